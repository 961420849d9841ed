"""Events as persistence gets them: an answer's analytics on their own, and made anonymous."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from pam_shared.events import AnalyticsEvent, analytics_of, anonymous
from support.persistence import analytics_event, answer

AT = datetime(2026, 11, 29, 22, 59, 59, 900_000, UTC).timestamp()


def test_anonymous_analytics_keep_what_was_measured_and_nothing_that_leads_to_the_user():
    event = analytics_event("u1", "fuel", 840.0, AT, tokens_in=120, tokens_out=7, trace_id="4bf92f35", error_code=None)
    hidden = anonymous(event, "fresh-id")
    assert (hidden.event_id, hidden.user_id, hidden.session_id, hidden.message_id, hidden.trace_id) == (
        "fresh-id",
        "",
        "",
        "",
        None,
    )
    assert datetime.fromtimestamp(hidden.created_at, UTC) == datetime(2026, 11, 29, 22, tzinfo=UTC)
    kept = ("intent", "engine", "model", "orchestrator", "total_ms", "tokens_in", "tokens_out", "error_code")
    assert all(getattr(hidden, f) == getattr(event, f) for f in kept)
    assert event.user_id == "u1" and event.created_at == AT  # the original is untouched


def test_an_answers_analytics_are_keyed_by_its_message_and_carry_no_words():
    answered = answer("u1", "$1.95/L", AT, intent="fuel", tokens_out=7, trace_id="4bf92f35", endpoint="primary")
    measured = analytics_of(answered)
    assert isinstance(measured, AnalyticsEvent)
    assert (measured.event_id, measured.message_id, measured.user_id, measured.session_id) == (
        answered.event_id,
        answered.event_id,
        "u1",
        "s1",
    )
    assert (measured.intent, measured.tokens_out, measured.trace_id, measured.endpoint) == (
        "fuel",
        7,
        "4bf92f35",
        "primary",
    )
    assert "$1.95/L" not in msgspec.json.encode(measured).decode()
