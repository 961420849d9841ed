"""Which conversation a message belongs to: a user's messages with no idle gap longer than ``gap``.

Pure bookkeeping over the spans already known for a user, so a batch is placed with
one read and, mostly, no write however many messages it holds.  Messages arriving out of
order (a redelivery after an outage) still land in the span they fall within.

A stored ``last_activity_at`` is only moved once it would advance by more than the
resolution (``PAM_ACTIVITY_RESOLUTION_SECONDS``), so most batches of a busy conversation write
nothing to it; it can then lag the conversation's last message by up to the resolution, never
more.  Placement must not act on that lag: a message falling within it past a span's reach
(``unsure``) is placed against the span's true end, read from its messages.  So are all of a
user's spans when the batch sees more than one, since which one a message joins depends on
their order.  Placement is then exactly what it would be with every time written.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Activity:
    """How messages make conversations, and how closely their times are kept."""

    gap: timedelta
    """An idle gap longer than this starts a new conversation."""
    resolution: timedelta = timedelta(0)
    """A stored last activity (a conversation's, a user's) moves only when it advances by more."""


@dataclass
class Span:
    """One conversation's extent, as stored or as this batch changed it."""

    id: uuid.UUID
    user_id: str
    started_at: datetime
    last_activity_at: datetime
    region: str
    stored_last: datetime | None = None
    """The ``last_activity_at`` PostgreSQL holds (None: not stored yet); the true end is at most
    the resolution later, until ``resolved``."""
    changed: bool = False
    """Started earlier, found its region, or new: written whatever the resolution."""

    def resolved(self, true_last: datetime) -> None:
        """Its true end, read from its messages."""
        self.last_activity_at = max(self.last_activity_at, true_last)

    def unwritten(self, resolution: timedelta) -> bool:
        """Whether PostgreSQL must be told: it changed, or its end moved by more than ``resolution``."""
        return self.changed or self.stored_last is None or self.last_activity_at - self.stored_last > resolution


def place(spans: list[Span], user_id: str, at: datetime, region: str, gap: timedelta) -> Span:
    """The span a message at ``at`` joins (stretching it if needed), or a new one appended to ``spans``."""
    near = [s for s in spans if s.started_at - gap <= at <= s.last_activity_at + gap]
    if not near:
        span = Span(uuid.uuid4(), user_id, at, at, region, changed=True)
        spans.append(span)
        return span
    span = max(near, key=lambda s: s.last_activity_at)
    if at < span.started_at:
        span.started_at, span.changed = at, True
    if at > span.last_activity_at:
        span.last_activity_at = at
    if region and not span.region:
        span.region, span.changed = region, True
    return span


def unsure(spans: list[Span], times: Sequence[datetime], activity: Activity) -> list[Span]:
    """The stored spans of one user whose true end placing messages at ``times`` depends on."""
    if len(spans) > 1:
        return spans
    return [s for s in spans if _lagging(s, times, activity)]


def _lagging(span: Span, times: Sequence[datetime], activity: Activity) -> bool:
    """Some of ``times`` are past the span's stored reach, but not past where its true end may reach."""
    reach = span.last_activity_at + activity.gap
    most = reach + activity.resolution
    return any(reach < t <= most for t in times)
