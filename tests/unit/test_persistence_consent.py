"""What persistence stores of each event, by the privacy settings it reads at write time."""

from __future__ import annotations

import msgspec
import pytest
from pam_persistence.consent import allowed
from pam_shared.events import AnalyticsEvent, Answer
from pam_shared.privacy import Privacy
from support.persistence import analytics_event, answer, assistant_message, user_message

EVERYTHING = Privacy(store_conversations=True, analytics=True)
NO_STORAGE = Privacy(store_conversations=False, analytics=True)
NO_ANALYTICS = Privacy(store_conversations=True, analytics=False)
NOTHING = Privacy(store_conversations=False, analytics=False)


def kinds(events: list) -> list[tuple[type, str]]:
    return [(type(e), e.user_id) for e in events]


@pytest.mark.parametrize("event", [user_message(), answer(), analytics_event(), assistant_message()])
def test_everything_allowed_is_stored_as_it_came(event):
    assert allowed(event, EVERYTHING, "salt") == [event]


def test_storage_off_keeps_no_words_only_the_analytics():
    answered = answer("u1", "$1.95/L")
    assert allowed(user_message("u1", "diesel?"), NO_STORAGE, "salt") == []
    assert allowed(assistant_message("u1", "$1.95/L"), NO_STORAGE, "salt") == []
    kept = allowed(answered, NO_STORAGE, "salt")
    assert kinds(kept) == [(AnalyticsEvent, "u1")] and kept[0].message_id == answered.event_id
    assert "$1.95/L" not in msgspec.json.encode(kept[0]).decode()
    measured = analytics_event("u1")
    assert allowed(measured, NO_STORAGE, "salt") == [measured]


def test_an_answer_that_came_without_its_analytics_leaves_nothing_when_storage_is_off():
    """Its analytics came as an event of their own, anonymous (``Answer.measured``)."""
    assert allowed(answer("u1", measured=False), NO_STORAGE, "salt") == []
    assert allowed(answer("u1", measured=False), NOTHING, "salt") == []


def test_analytics_off_keeps_the_words_and_makes_the_analytics_anonymous():
    answered, asked = answer("u1", "$1.95/L", trace_id="4bf92f35"), user_message("u1", "diesel?")
    assert allowed(asked, NO_ANALYTICS, "salt") == [asked]
    message, measured = allowed(answered, NO_ANALYTICS, "salt")
    assert isinstance(message, Answer) and not message.measured and message.content == "$1.95/L"
    assert isinstance(measured, AnalyticsEvent)
    assert (measured.user_id, measured.session_id, measured.message_id, measured.trace_id) == ("", "", "", None)
    assert measured.event_id != answered.event_id and measured.created_at % 3600 == 0


def test_nothing_allowed_is_anonymous_analytics_alone():
    answered = answer("u1", "$1.95/L")
    assert [type(e) for e in allowed(user_message("u1"), NOTHING, "salt")] == []
    assert kinds(allowed(answered, NOTHING, "salt")) == [(AnalyticsEvent, "")]
    assert kinds(allowed(analytics_event("u1"), NOTHING, "salt")) == [(AnalyticsEvent, "")]


def test_an_anonymous_event_keeps_one_id_however_often_delivered_and_only_we_can_link_it():
    measured = analytics_event("u1")
    first, again = allowed(measured, NOTHING, "salt"), allowed(measured, NOTHING, "salt")
    assert first[0].event_id == again[0].event_id != measured.event_id
    assert allowed(measured, NOTHING, "another salt")[0].event_id != first[0].event_id


@pytest.mark.parametrize("privacy", [NO_STORAGE, NO_ANALYTICS, NOTHING])
def test_events_already_anonymous_pass_as_they_are(privacy):
    hidden = msgspec.structs.replace(analytics_event("u1"), user_id="", session_id="", message_id="")
    assert allowed(hidden, privacy, "salt") == [hidden]
