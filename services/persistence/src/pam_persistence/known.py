"""What PostgreSQL already holds of a batch's users, read in one statement: each one's erasure
fence and privacy settings (for screening), ``users`` row and conversations near the batch's
times (for bookkeeping).  Knowing what is stored is what lets a batch skip writing what would
not change by more than the resolution (``conversations``), in every instance alike.

Read once the batch holds its users' locks (``consent.lock_users``), in a statement of its own:
a statement sees what was committed before it began, so lookups in the statement that waits for
the lock would miss the fence of the very erasure it waited for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from pam_shared.privacy import Privacy

from pam_persistence.conversations import Span


@dataclass(slots=True)
class Known:
    """One user of a batch, as stored."""

    erased_at: datetime | None
    privacy: Privacy | None
    seen: tuple[datetime, datetime] | None
    """Their ``users`` row: first and last seen."""
    spans: list[Span]
    """Their conversations active between the times the batch asked about."""


async def read(
    conn: asyncpg.Connection, users: Sequence[str], hashes: Sequence[str], near: tuple[datetime, datetime] | None
) -> dict[str, Known]:
    """``users`` (``hashes``: how their fences name them), with their conversations that were
    active within ``near`` (none when None)."""
    since, until = near or (None, None)
    return {row["user_id"]: _known(row) for row in await conn.fetch(_KNOWN, list(users), list(hashes), since, until)}


def _known(row: asyncpg.Record) -> Known:
    privacy = Privacy(row["store_conversations"], row["analytics"]) if row["store_conversations"] is not None else None
    seen = (row["first_seen_at"], row["last_seen_at"]) if row["first_seen_at"] is not None else None
    user, columns = row["user_id"], (row["ids"], row["starts"], row["lasts"], row["regions"])
    spans = [
        Span(span, user, started, last, region, stored_last=last)
        for span, started, last, region in zip(*(c or [] for c in columns), strict=True)
    ]
    return Known(row["erased_at"], privacy, seen, spans)


_KNOWN = """
SELECT batch.user_id, fence.erased_at, chosen.store_conversations, chosen.analytics,
       seen.first_seen_at, seen.last_seen_at, near.ids, near.starts, near.lasts, near.regions
FROM unnest($1::text[], $2::text[]) AS batch (user_id, user_hash)
LEFT JOIN erasures AS fence ON fence.user_hash = batch.user_hash
LEFT JOIN privacy_settings AS chosen ON chosen.user_id = batch.user_id
LEFT JOIN users AS seen ON seen.id = batch.user_id
CROSS JOIN LATERAL (
    SELECT array_agg(id) AS ids, array_agg(started_at) AS starts, array_agg(last_activity_at) AS lasts,
           array_agg(region) AS regions
    FROM conversations
    WHERE user_id = batch.user_id AND last_activity_at >= $3 AND started_at <= $4
) AS near
"""
