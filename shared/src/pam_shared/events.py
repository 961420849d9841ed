"""Events the services record for persistence, carried by the JetStream events stream.

Each has an ``event_id`` that is also its ``Nats-Msg-Id`` (so a retried publish is
stored once) and its primary key in PostgreSQL (so a redelivery writes no second row).

A finished answer is one ``Answer`` (its message and its analytics row, one publish); an
answer that failed is an ``AnalyticsEvent`` alone.  ``AssistantMessage`` and an
``AnalyticsEvent`` per answer are what orchestrators published before ``Answer``: persistence
still stores them, so events already in the stream during a deploy are kept.  Deploy
persistence first: an older one parks an ``Answer`` in ``dead_letters``.
"""

from __future__ import annotations

import msgspec

from pam_shared.protocol import UiAction


class UserMessage(msgspec.Struct, tag_field="kind", tag="user_message"):
    """A chat the gateway accepted from a user."""

    event_id: str
    session_id: str
    user_id: str
    content: str
    created_at: float
    client_message_id: str | None = None
    region: str = ""
    current_page: str = ""
    trace_id: str | None = None
    edit_of: str | None = None
    """The earlier user message (its id, or its client id) this one replaces: a sibling of it."""


class AssistantMessage(msgspec.Struct, tag_field="kind", tag="assistant_message"):
    """A finished answer: the whole text, its intent and the UI actions it asked for."""

    event_id: str
    session_id: str
    user_id: str
    message_id: str
    content: str
    intent: str
    created_at: float
    reply_to: str | None = None
    ui_actions: list[UiAction] = []
    trace_id: str | None = None


class AnalyticsEvent(msgspec.Struct, tag_field="kind", tag="analytics"):
    """How one answer went: timings, tokens, engine, errors, which orchestrator."""

    event_id: str
    session_id: str
    user_id: str
    message_id: str
    intent: str
    engine: str
    model: str | None
    orchestrator: str
    total_ms: float
    created_at: float
    time_to_first_chunk_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    error_code: str | None = None
    trace_id: str | None = None
    cached_tokens: int | None = None
    endpoint: str | None = None
    """The model endpoint that answered (``PAM_MODELS``' name), or the last one that failed."""


class Answer(msgspec.Struct, tag_field="kind", tag="answer"):
    """A finished answer and how it went, in one event: the assistant message and its analytics.

    ``event_id`` is the message id; it keys both rows (``messages``, ``analytics_events``),
    so a redelivered answer writes neither twice.
    """

    event_id: str
    session_id: str
    user_id: str
    content: str
    intent: str
    created_at: float
    engine: str
    model: str | None
    orchestrator: str
    total_ms: float
    reply_to: str | None = None
    ui_actions: list[UiAction] = []
    time_to_first_chunk_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    trace_id: str | None = None
    cached_tokens: int | None = None
    endpoint: str | None = None
    truncated: str | None = None
    """Why the answer ended short (``ChatResponse.truncated``: ``stopped`` by the user ...); None: complete."""
    parent_id: str | None = None
    """The user message it answers (a regenerated answer is a sibling of the earlier one)."""
    measured: bool = True
    """False when the user keeps analytics to themselves: this is the message alone, and its
    analytics come as an ``anonymous`` ``AnalyticsEvent`` of their own."""


def analytics_of(answer: Answer) -> AnalyticsEvent:
    """An answer's analytics row as an event of its own (for a user who keeps no conversations)."""
    return AnalyticsEvent(
        event_id=answer.event_id,
        session_id=answer.session_id,
        user_id=answer.user_id,
        message_id=answer.event_id,
        intent=answer.intent,
        engine=answer.engine,
        model=answer.model,
        orchestrator=answer.orchestrator,
        total_ms=answer.total_ms,
        created_at=answer.created_at,
        time_to_first_chunk_ms=answer.time_to_first_chunk_ms,
        tokens_in=answer.tokens_in,
        tokens_out=answer.tokens_out,
        trace_id=answer.trace_id,
        cached_tokens=answer.cached_tokens,
        endpoint=answer.endpoint,
    )


def anonymous(event: AnalyticsEvent, event_id: str) -> AnalyticsEvent:
    """``event`` with nothing that leads back to its user: no user, session, message or trace,
    its time to the hour (an exact time would match it to the stored message), a new id."""
    return msgspec.structs.replace(
        event,
        event_id=event_id,
        session_id="",
        user_id="",
        message_id="",
        trace_id=None,
        created_at=event.created_at - event.created_at % 3600,
    )


Event = UserMessage | AssistantMessage | AnalyticsEvent | Answer

event_encoder = msgspec.json.Encoder()
event_decoder = msgspec.json.Decoder(Event)

SUBJECT_KIND = {
    UserMessage: "user_message",
    AssistantMessage: "assistant_message",
    AnalyticsEvent: "analytics",
    Answer: "answer",
}
