"""Timers and alarms, kept as JetStream message schedules: no process holds them in memory.

A timer is a schedule message (nats-server 2.12+, on a stream with ``allow_msg_schedules``):
at its time the server itself publishes the timer to its target subject and removes the
schedule.  So a timer lives as long as the stream does, through restarts of every service
and, with replicas, the loss of a NATS node.  In ``<NS>_TIMERS``, per timer:

- ``<ns>.timers.due.<user>.<id>``: the schedule (``Nats-Schedule: @at <UTC>``), until it goes off;
- ``<ns>.timers.fired.<user>.<id>``: what the server publishes then; orchestrators consume it
  (a durable consumer) and push ``timer_expired`` to the user's sockets; it stays, for a client
  that was away, until dismissed or for ``FIRED_KEPT``;
- ``<ns>.timers.shown.<user>.<id>``: a gateway delivered that push to a live socket.

Dismissing a timer removes all three.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg, StreamConfig
from nats.js.errors import NotFoundError

from pam_shared import jetstream, logs
from pam_shared.protocol import TimerExpired, now_iso
from pam_shared.subjects import Subjects, user_token

log = logging.getLogger("pam.timers")

MAX_DURATION = timedelta(days=31)
MAX_LABEL_CHARS = 100
FIRED_KEPT = "24h"
"""How long a timer that went off waits for a client that was away (``Nats-TTL``)."""
TIMER_ID = re.compile(r"[0-9a-f]{32}")

Kind = Literal["timer", "alarm"]


class Timer(msgspec.Struct):
    """One timer or alarm; ``due_at`` is UTC, ``timezone`` the zone an alarm's clock time was in."""

    timer_id: str
    user_id: str
    kind: Kind
    label: str
    due_at: str
    set_at: str
    timezone: str | None = None


class TimerRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Setting one over REST: ``duration_seconds`` for a timer, or ``time`` (HH:MM, with an
    optional ``date``) for an alarm in ``timezone`` (IANA; UTC when missing)."""

    duration_seconds: Annotated[int, msgspec.Meta(ge=1)] | None = None
    time: str | None = None
    date: str | None = None
    timezone: str | None = None
    label: Annotated[str, msgspec.Meta(max_length=MAX_LABEL_CHARS)] = ""


class TimerError(ValueError):
    """A timer that cannot be set (a duration out of range, a time that does not parse)."""


class TimersUnavailable(Exception):
    """The NATS servers cannot schedule messages (older than 2.12): no timer can be kept."""


timer_encoder = msgspec.json.Encoder()
timer_decoder = msgspec.json.Decoder(Timer)
timer_request_decoder = msgspec.json.Decoder(TimerRequest)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def countdown(user_id: str, seconds: float, label: str = "", now: datetime | None = None) -> Timer:
    """A timer going off ``seconds`` from now."""
    now = now or datetime.now(UTC)
    if not 1 <= seconds <= MAX_DURATION.total_seconds():
        raise TimerError(f"a timer runs between 1 second and {MAX_DURATION.days} days")
    due = now + timedelta(seconds=seconds)
    if due.microsecond:  # the schedule counts whole seconds: never early
        due = due.replace(microsecond=0) + timedelta(seconds=1)
    return Timer(uuid.uuid4().hex, user_id, "timer", label[:MAX_LABEL_CHARS], _utc(due), _utc(now))


def alarm(
    user_id: str, clock: str, zone: str | None, label: str = "", on: str | None = None, now: datetime | None = None
) -> Timer:
    """An alarm at the clock time ``clock`` (HH:MM) in ``zone``: on the local date ``on``, or
    the next time the clock shows it."""
    try:
        tz = ZoneInfo(zone or "UTC")
        at = time.fromisoformat(clock)
        day = date.fromisoformat(on) if on else None
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise TimerError(f"an alarm needs a time HH:MM, a date YYYY-MM-DD and a known time zone: {exc}") from None
    now = now or datetime.now(UTC)
    local_now = now.astimezone(tz)
    due = datetime.combine(day or local_now.date(), at, tz)
    if day is None and due <= local_now:
        due = datetime.combine(local_now.date() + timedelta(days=1), at, tz)
    if not now < due <= now + MAX_DURATION:
        raise TimerError(f"an alarm goes off within the next {MAX_DURATION.days} days")
    return Timer(uuid.uuid4().hex, user_id, "alarm", label[:MAX_LABEL_CHARS], _utc(due), _utc(now), zone or "UTC")


def from_request(user_id: str, request: TimerRequest) -> Timer:
    if request.duration_seconds is not None:
        return countdown(user_id, request.duration_seconds, request.label)
    if request.time is not None:
        return alarm(user_id, request.time, request.timezone, request.label, request.date)
    raise TimerError("a timer needs duration_seconds, an alarm needs time")


def expired_frame(timer: Timer) -> TimerExpired:
    what = timer.label or ("Your alarm" if timer.kind == "alarm" else "Your timer")
    words = f"{what}: time's up." if timer.kind == "timer" else f"{what}: it's time."
    return TimerExpired(
        timer_id=timer.timer_id,
        kind=timer.kind,
        label=timer.label,
        message=words,
        due_at=timer.due_at,
        timestamp=now_iso(),
    )


class TimerStore:
    """The timers stream, read and written the ways gateways and orchestrators need it."""

    def __init__(self, js: JetStreamContext, names: Subjects) -> None:
        self.js = js
        self.names = names
        self.stream = names.timers_stream
        self.root = f"{names.namespace}.timers"
        self.available = True

    def subject(self, part: str, user_id: str, timer_id: str = "*") -> str:
        return f"{self.root}.{part}.{user_token(user_id)}.{timer_id}"

    @property
    def fired_wildcard(self) -> str:
        return f"{self.root}.fired.>"

    async def ensure(self, replicas: int = 1) -> None:
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.root}.>"],
            allow_msg_schedules=True,
            allow_msg_ttl=True,
            max_msgs_per_subject=1,
            num_replicas=replicas,
        )
        await jetstream.ensure_stream(self.js, config)
        info = await self.js.stream_info(self.stream)
        self.available = bool(info.config.allow_msg_schedules)  # older servers drop the field silently
        if not self.available:
            log.error(
                "timers are off: the NATS servers do not schedule messages (nats-server 2.12 or later needed)",
                extra={"marker": logs.ERROR},
            )

    async def set(self, timer: Timer) -> None:
        """Schedule it; it is kept (and will go off) once this returns."""
        if not self.available:
            raise TimersUnavailable("the NATS servers cannot schedule messages (nats-server 2.12 or later needed)")
        headers = {
            "Nats-Schedule": f"@at {timer.due_at}",
            "Nats-Schedule-Target": self.subject("fired", timer.user_id, timer.timer_id),
            "Nats-Schedule-TTL": FIRED_KEPT,
        }
        subject = self.subject("due", timer.user_id, timer.timer_id)
        await jetstream.publish(self.js, subject, timer_encoder.encode(timer), headers)

    async def pending(self, user_id: str) -> list[Timer]:
        """The user's timers that have not gone off yet, soonest first."""
        timers = [timer_decoder.decode(msg.data or b"") async for msg in self._messages(self.subject("due", user_id))]
        return sorted(timers, key=lambda t: t.due_at)

    async def unseen(self, user_id: str) -> list[Timer]:
        """Timers that went off while no socket of the user was open, not dismissed since."""
        shown = {(msg.subject or "").rsplit(".", 1)[1] async for msg in self._messages(self.subject("shown", user_id))}
        fired = [timer_decoder.decode(msg.data or b"") async for msg in self._messages(self.subject("fired", user_id))]
        return [t for t in fired if t.timer_id not in shown]

    async def shown(self, user_id: str, timer_id: str) -> None:
        await jetstream.publish(self.js, self.subject("shown", user_id, timer_id), b"", {"Nats-TTL": FIRED_KEPT})

    async def cancel(self, user_id: str, timer_id: str) -> bool:
        """Stop a timer before it goes off; False when there was none (gone off, or unknown)."""
        if not TIMER_ID.fullmatch(timer_id):
            return False
        return await self._purge(self.subject("due", user_id, timer_id))

    async def dismiss(self, user_id: str, timer_id: str) -> bool:
        """Forget a timer: cancelled if still due, and not delivered again if it went off."""
        if not TIMER_ID.fullmatch(timer_id):
            return False
        found = [await self._purge(self.subject(part, user_id, timer_id)) for part in ("due", "fired", "shown")]
        return any(found)

    async def _purge(self, subject: str) -> bool:
        try:
            await self.js.get_msg(self.stream, subject=subject, seq=1, next=True)
        except NotFoundError:
            return False
        await self.js.purge_stream(self.stream, subject=subject)
        return True

    async def _messages(self, subject: str) -> AsyncIterator[RawStreamMsg]:
        seq = 1
        while True:
            try:
                msg = await self.js.get_msg(self.stream, seq=seq, subject=subject, next=True)
            except NotFoundError:
                return
            yield msg
            seq = (msg.seq or seq) + 1
