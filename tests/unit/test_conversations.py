"""Conversation placement over spans whose stored end may lag by up to the resolution."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pam_persistence.conversations import Activity, Span, place, unsure

T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
GAP, RESOLUTION = timedelta(minutes=30), timedelta(seconds=60)
ACTIVITY = Activity(GAP, RESOLUTION)


def stored(started: datetime, last: datetime) -> Span:
    return Span(uuid.uuid4(), "u1", started, last, "", stored_last=last)


def test_only_a_message_within_the_resolution_past_a_spans_reach_needs_its_true_end():
    span = stored(T0, T0)
    assert unsure([span], [T0 + GAP], ACTIVITY) == []  # within reach whatever the lag
    assert unsure([span], [T0 + GAP + timedelta(seconds=1)], ACTIVITY) == [span]
    assert unsure([span], [T0 + GAP + RESOLUTION], ACTIVITY) == [span]
    assert unsure([span], [T0 + GAP + RESOLUTION + timedelta(seconds=1)], ACTIVITY) == []  # beyond any true end
    assert unsure([span], [T0 + GAP + timedelta(seconds=1)], Activity(GAP)) == []  # no lag without a resolution


def test_every_span_of_a_user_with_several_needs_its_true_end():
    spans = [stored(T0, T0), stored(T0 + 2 * GAP, T0 + 2 * GAP)]
    assert unsure(spans, [T0 + timedelta(seconds=5)], ACTIVITY) == spans


def test_a_span_is_written_when_new_changed_or_its_end_moved_past_the_resolution():
    span = stored(T0, T0)
    place([span], "u1", T0 + RESOLUTION, "", GAP)
    assert span.last_activity_at == T0 + RESOLUTION and not span.unwritten(RESOLUTION)
    place([span], "u1", T0 + RESOLUTION + timedelta(microseconds=1), "", GAP)
    assert span.unwritten(RESOLUTION)
    earlier = stored(T0, T0)
    place([earlier], "u1", T0 - timedelta(seconds=1), "", GAP)
    assert earlier.unwritten(RESOLUTION)  # started earlier
    found = stored(T0, T0)
    place([found], "u1", T0, "Queensland", GAP)
    assert found.unwritten(RESOLUTION)  # its region
    spans: list[Span] = []
    assert place(spans, "u1", T0, "", GAP).unwritten(RESOLUTION)  # new


def test_a_resolved_span_is_placed_against_its_true_end_but_written_against_the_stored_one():
    span = stored(T0, T0)
    span.resolved(T0 + timedelta(seconds=50))
    late = T0 + timedelta(seconds=50) + GAP - timedelta(seconds=1)
    assert place([span], "u1", late, "", GAP) is span  # 30 min after the stored end, not after the true one
    assert span.unwritten(RESOLUTION)
