"""What an answer leaves behind for persistence, published once per chat, as the user allows.

A finished answer is an ``Answer`` (the assistant message and its analytics together, one
JetStream publish); one that failed is its ``AnalyticsEvent`` alone.  A user who keeps their
conversations to themselves leaves the analytics alone; one who keeps analytics to themselves
leaves them ``anonymous``, as an event of their own.
"""

from __future__ import annotations

import time
import uuid

import msgspec
from pam_shared import tracing
from pam_shared.events import AnalyticsEvent, Answer, Event, analytics_of, anonymous
from pam_shared.internal import ChatRequest

from pam_orchestrator.answer import Outcome
from pam_orchestrator.engine import Engine
from pam_orchestrator.replies import ReplyStream


def answer_events(
    request: ChatRequest, replies: ReplyStream, outcome: Outcome, engine: Engine, instance: str, parent_id: str
) -> list[Event]:
    """The events to record for one answer, which answers user message ``parent_id``."""
    privacy = request.privacy
    if outcome.error_code is not None:
        measured = _failed(request, replies, outcome, engine, instance)
    elif privacy.store_conversations:
        answered = _answered(request, replies, outcome, engine, instance, parent_id)
        if privacy.analytics:
            return [answered]
        return [msgspec.structs.replace(answered, measured=False), anonymous(analytics_of(answered), uuid.uuid4().hex)]
    else:
        measured = analytics_of(_answered(request, replies, outcome, engine, instance, parent_id))
    return [measured if privacy.analytics else anonymous(measured, uuid.uuid4().hex)]


def _failed(
    request: ChatRequest, replies: ReplyStream, outcome: Outcome, engine: Engine, instance: str
) -> AnalyticsEvent:
    usage, source = outcome.usage, outcome.source
    model, endpoint = (source.model, source.endpoint) if source else (engine.model, None)
    trace_id = tracing.trace_id_of(tracing.current_traceparent.get())
    first_chunk_ms = round(outcome.first_chunk_ms, 2) if outcome.first_chunk_ms is not None else None
    return AnalyticsEvent(
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


def _answered(
    request: ChatRequest, replies: ReplyStream, outcome: Outcome, engine: Engine, instance: str, parent_id: str
) -> Answer:
    usage, source = outcome.usage, outcome.source
    endpoint = source.endpoint if source else None
    trace_id = tracing.trace_id_of(tracing.current_traceparent.get())
    first_chunk_ms = round(outcome.first_chunk_ms, 2) if outcome.first_chunk_ms is not None else None
    return Answer(
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
