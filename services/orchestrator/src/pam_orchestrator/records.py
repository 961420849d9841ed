"""What an answer leaves behind for persistence: one event, published once per chat.

A finished answer is an ``Answer`` (the assistant message and its analytics together, one
JetStream publish); one that failed is its ``AnalyticsEvent`` alone.
"""

from __future__ import annotations

import time
import uuid

from pam_shared import tracing
from pam_shared.events import AnalyticsEvent, Answer, Event
from pam_shared.internal import ChatRequest

from pam_orchestrator.answer import Outcome
from pam_orchestrator.engine import Engine
from pam_orchestrator.replies import ReplyStream


def answer_events(
    request: ChatRequest, replies: ReplyStream, outcome: Outcome, engine: Engine, instance: str, parent_id: str
) -> list[Event]:
    """The events to record for one answer, which answers user message ``parent_id``: always exactly one."""
    usage, source = outcome.usage, outcome.source
    model, endpoint = (source.model, source.endpoint) if source else (engine.model, None)
    trace_id = tracing.trace_id_of(tracing.current_traceparent.get())
    first_chunk_ms = round(outcome.first_chunk_ms, 2) if outcome.first_chunk_ms is not None else None
    if outcome.error_code is not None:
        failed = AnalyticsEvent(
            event_id=uuid.uuid4().hex,
            session_id=request.session_id,
            user_id=request.user_id,
            message_id=replies.message_id,
            intent=outcome.intent,
            engine=engine.name,
            model=model,
            orchestrator=instance,
            total_ms=round(outcome.total_ms, 2),
            created_at=time.time(),
            time_to_first_chunk_ms=first_chunk_ms,
            tokens_in=usage.tokens_in if usage else None,
            tokens_out=usage.tokens_out if usage else None,
            error_code=outcome.error_code,
            trace_id=trace_id,
            cached_tokens=usage.cached_tokens if usage else None,
            endpoint=endpoint,
        )
        return [failed]
    answered = Answer(
        event_id=replies.message_id,
        session_id=request.session_id,
        user_id=request.user_id,
        content=outcome.text,
        intent=outcome.intent,
        created_at=replies.finished_at or time.time(),
        engine=engine.name,
        model=engine.model,
        orchestrator=instance,
        total_ms=round(outcome.total_ms, 2),
        reply_to=request.message_id,
        ui_actions=replies.actions,
        time_to_first_chunk_ms=first_chunk_ms,
        tokens_in=usage.tokens_in if usage else None,
        tokens_out=usage.tokens_out if usage else None,
        trace_id=trace_id,
        cached_tokens=usage.cached_tokens if usage else None,
        endpoint=endpoint,
        truncated=outcome.truncated,
        parent_id=parent_id,
    )
    return [answered]
