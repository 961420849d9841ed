"""Events as the table rows they become, in each table's column order (what COPY takes).

A user message and an old-style assistant message are a ``messages`` row each, an
``AnalyticsEvent`` an ``analytics_events`` row, and an ``Answer`` one of each, both keyed
by its event id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from pam_shared.events import AnalyticsEvent, Answer, AssistantMessage, Event, UserMessage

MESSAGE_COLUMNS = ("id", "conversation_id", "user_id", "session_id", "role", "content", "intent",
                   "client_message_id", "reply_to", "current_page", "ui_actions", "created_at", "trace_id",
                   "state", "parent_id", "edit_of")  # fmt: skip
ANALYTICS_COLUMNS = ("id", "user_id", "session_id", "message_id", "intent", "engine", "model", "orchestrator",
                     "total_ms", "time_to_first_chunk_ms", "tokens_in", "tokens_out", "error_code", "created_at",
                     "trace_id", "cached_tokens", "endpoint")  # fmt: skip

Message = UserMessage | AssistantMessage | Answer
Measured = AnalyticsEvent | Answer

_actions_encoder = msgspec.json.Encoder()


def moment(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


@dataclass(frozen=True, slots=True)
class Split:
    """One batch's events by the rows they make, each id once."""

    messages: list[Message]
    analytics: list[Measured]

    @classmethod
    def of(cls, events: Sequence[Event]) -> Split:
        messages = {e.event_id: e for e in events if not isinstance(e, AnalyticsEvent)}
        analytics: dict[str, Measured] = {}
        for e in events:
            if isinstance(e, AnalyticsEvent) or (isinstance(e, Answer) and e.measured):
                analytics[e.event_id] = e
        return cls(list(messages.values()), list(analytics.values()))


def message_row(m: Message, conversation_id: uuid.UUID) -> tuple[object, ...]:
    at = moment(m.created_at)
    if isinstance(m, UserMessage):
        return (m.event_id, conversation_id, m.user_id, m.session_id, "user", m.content, None,
                m.client_message_id, None, m.current_page, None, at, m.trace_id, None, None, m.edit_of)  # fmt: skip
    actions = _actions_encoder.encode(m.ui_actions).decode() if m.ui_actions else None
    state, parent = ((m.truncated or "complete"), m.parent_id) if isinstance(m, Answer) else ("complete", None)
    return (m.event_id, conversation_id, m.user_id, m.session_id, "assistant", m.content, m.intent,
            None, m.reply_to, "", actions, at, m.trace_id, state, parent, None)  # fmt: skip


def analytics_row(e: Measured) -> tuple[object, ...]:
    if isinstance(e, Answer):
        return (e.event_id, e.user_id, e.session_id, e.event_id, e.intent, e.engine, e.model, e.orchestrator,
                e.total_ms, e.time_to_first_chunk_ms, e.tokens_in, e.tokens_out, None, moment(e.created_at),
                e.trace_id, e.cached_tokens, e.endpoint)  # fmt: skip
    return (e.event_id, e.user_id, e.session_id, e.message_id, e.intent, e.engine, e.model, e.orchestrator,
            e.total_ms, e.time_to_first_chunk_ms, e.tokens_in, e.tokens_out, e.error_code, moment(e.created_at),
            e.trace_id, e.cached_tokens, e.endpoint)  # fmt: skip
