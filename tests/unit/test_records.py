"""What an answer leaves for persistence under each of a user's privacy settings (no network)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pam_orchestrator.answer import Outcome
from pam_orchestrator.engine import Source, Usage
from pam_orchestrator.offline import OfflineEngine
from pam_orchestrator.records import answer_events
from pam_orchestrator.replies import ReplyStream
from pam_shared import tracing
from pam_shared.errors import ErrorCode
from pam_shared.events import AnalyticsEvent, Answer
from pam_shared.internal import ChatRequest
from pam_shared.privacy import Privacy
from pam_shared.protocol import ChatContext

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
FINISHED_AT = datetime(2026, 11, 29, 22, 30, 56, 500_000, UTC).timestamp()
"""An anonymous event is stamped 22:00:00: its exact time would match it to the message."""


async def _unused(*_: object) -> dict[str, str]:
    raise AssertionError("recording an answer sends nothing")


def replies() -> ReplyStream:
    stream = ReplyStream(_unused, "c1", _unused, 0.0)
    stream.finished_at = FINISHED_AT
    return stream


def chat(privacy: Privacy) -> ChatRequest:
    context = ChatContext(region="Queensland")
    return ChatRequest("chat-1", "s1", "u1", False, "diesel near Longreach?", context, 0.0, "c1", privacy=privacy)


def outcome(error_code: ErrorCode | None = None) -> Outcome:
    usage = Usage(tokens_in=120, tokens_out=7)
    return Outcome("fuel", "$1.95/L", 840.0, 95.0, usage, error_code, source=Source("primary", "gpt-x"))


def events(privacy: Privacy, error_code: ErrorCode | None = None) -> tuple[ReplyStream, list]:
    stream = replies()
    token = tracing.current_traceparent.set(TRACEPARENT)
    try:
        return stream, answer_events(chat(privacy), stream, outcome(error_code), OfflineEngine(), "orch-1", "m0")
    finally:
        tracing.current_traceparent.reset(token)


def assert_anonymous(event: object, stream: ReplyStream) -> None:
    assert isinstance(event, AnalyticsEvent)
    assert (event.user_id, event.session_id, event.message_id, event.trace_id) == ("", "", "", None)
    assert datetime.fromtimestamp(event.created_at, UTC) == datetime(2026, 11, 29, 22, tzinfo=UTC)
    assert event.event_id != stream.message_id
    assert (event.intent, event.tokens_out, event.orchestrator) == ("fuel", 7, "orch-1")


def test_everything_allowed_is_one_answer_with_its_analytics():
    stream, recorded = events(Privacy(store_conversations=True, analytics=True))
    assert len(recorded) == 1 and isinstance(recorded[0], Answer)
    answer = recorded[0]
    assert (answer.user_id, answer.content, answer.event_id, answer.measured) == (
        "u1",
        "$1.95/L",
        stream.message_id,
        True,
    )
    assert answer.trace_id == tracing.trace_id_of(TRACEPARENT) and answer.parent_id == "m0"


def test_analytics_off_is_the_message_alone_and_anonymous_analytics():
    stream, recorded = events(Privacy(store_conversations=True, analytics=False))
    assert [type(e) for e in recorded] == [Answer, AnalyticsEvent]
    message, measured = recorded
    assert (message.user_id, message.content, message.measured) == ("u1", "$1.95/L", False)
    assert_anonymous(measured, stream)


def test_storage_off_is_the_analytics_alone_without_the_words():
    stream, recorded = events(Privacy(store_conversations=False, analytics=True))
    assert len(recorded) == 1 and isinstance(recorded[0], AnalyticsEvent)
    measured = recorded[0]
    assert (measured.user_id, measured.session_id, measured.message_id) == ("u1", "s1", stream.message_id)
    assert measured.trace_id == tracing.trace_id_of(TRACEPARENT) and measured.tokens_out == 7
    assert "$1.95/L" not in str(measured)


def test_storage_and_analytics_off_is_anonymous_analytics_alone():
    stream, recorded = events(Privacy(store_conversations=False, analytics=False))
    assert len(recorded) == 1
    assert_anonymous(recorded[0], stream)


@pytest.mark.parametrize("store_conversations", [True, False])
def test_a_failed_answer_is_its_analytics_anonymous_when_analytics_are_off(store_conversations):
    _, kept = events(Privacy(store_conversations, analytics=True), "llm_error")
    _, hidden = events(Privacy(store_conversations, analytics=False), "llm_error")
    assert [(type(e), e.user_id, e.error_code) for e in kept] == [(AnalyticsEvent, "u1", "llm_error")]
    assert [(type(e), e.user_id, e.session_id, e.trace_id, e.error_code) for e in hidden] == [
        (AnalyticsEvent, "", "", None, "llm_error")
    ]
    assert hidden[0].created_at % 3600 == 0
