"""Which conversation a message belongs to: a user's messages with no idle gap longer than ``gap``.

Pure bookkeeping over the spans already known for a user, so a batch is placed with
one read and one write however many messages it holds.  Messages arriving out of
order (a redelivery after an outage) still land in the span they fall within.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass
class Span:
    """One conversation's extent, as stored or as this batch changed it."""

    id: uuid.UUID
    user_id: str
    started_at: datetime
    last_activity_at: datetime
    region: str
    changed: bool = False


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
        span.last_activity_at, span.changed = at, True
    if region and not span.region:
        span.region, span.changed = region, True
    return span
