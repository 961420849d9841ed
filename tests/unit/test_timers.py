"""When a timer or an alarm goes off, worked out from what the user said and where they are."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pam_shared.timers import TimerError, TimerRequest, alarm, countdown, expired_frame, from_request

NOW = datetime(2026, 12, 2, 15, 30, 10, 250_000, tzinfo=UTC)  # 01:30:10 in Brisbane, 10:30:10 in New York


def test_a_countdown_goes_off_that_many_seconds_later_rounded_up_to_the_second():
    timer = countdown("u", 1200, "pasta", now=NOW)
    assert timer.kind == "timer" and timer.label == "pasta"
    assert timer.due_at == "2026-12-02T15:50:11Z" and timer.set_at == "2026-12-02T15:30:10Z"


def test_wake_me_at_6_in_brisbane_is_the_next_6_there():
    timer = alarm("u", "06:00", "Australia/Brisbane", now=NOW)
    assert timer.kind == "alarm" and timer.timezone == "Australia/Brisbane"
    assert timer.due_at == "2026-12-02T20:00:00Z"  # 06:00 on 3 December, UTC+10


def test_an_alarm_whose_time_has_passed_today_is_tomorrows():
    assert alarm("u", "09:00", "America/New_York", now=NOW).due_at == "2026-12-03T14:00:00Z"
    assert alarm("u", "11:00", "America/New_York", now=NOW).due_at == "2026-12-02T16:00:00Z"


def test_an_alarm_on_a_date_follows_that_days_offset():
    assert alarm("u", "08:30", "Europe/Berlin", on="2026-12-24", now=NOW).due_at == "2026-12-24T07:30:00Z"


def test_an_alarm_without_a_zone_is_utc_and_seconds_are_kept():
    assert alarm("u", "15:30:15", None, now=NOW).due_at == "2026-12-02T15:30:15Z"


@pytest.mark.parametrize(
    ("clock", "zone", "on"),
    [
        ("25:00", "UTC", None),
        ("06:00", "Mars/Olympus", None),
        ("06:00", "UTC", "2026-12-01"),
        ("06:00", "UTC", "2027-06-01"),
    ],
)
def test_an_alarm_that_cannot_be_is_refused_with_a_reason(clock, zone, on):
    with pytest.raises(TimerError):
        alarm("u", clock, zone, on=on, now=NOW)


@pytest.mark.parametrize("seconds", [0, 31 * 86400 + 1])
def test_a_countdown_out_of_range_is_refused(seconds):
    with pytest.raises(TimerError):
        countdown("u", seconds, now=NOW)


def test_a_rest_request_needs_a_duration_or_a_time():
    with pytest.raises(TimerError):
        from_request("u", TimerRequest(label="nothing"))
    assert from_request("u", TimerRequest(time="06:00", timezone="Australia/Perth")).kind == "alarm"


def test_the_expired_frame_says_what_went_off():
    frame = expired_frame(countdown("u", 60, "pasta", now=NOW))
    assert frame.kind == "timer" and frame.message == "pasta: time's up." and frame.due_at == "2026-12-02T15:31:11Z"
    assert expired_frame(alarm("u", "06:00", "UTC", now=NOW)).message == "Your alarm: it's time."
