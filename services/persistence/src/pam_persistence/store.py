"""Writing a batch of events to PostgreSQL in one transaction.

Redelivery is harmless: the ids of a batch already stored are looked up first (one index
probe per id), and only the rest are placed in a conversation and written, by COPY straight
into ``messages`` and ``analytics_events``.  Picked by measurement (``bench/persistence_ingest.py``,
docs/performance.md): this "stored-id check + COPY" costs a fraction of ``INSERT ... ON
CONFLICT DO NOTHING`` from ``unnest`` arrays or from a COPY into a temporary table, needs no
temporary table (so it works behind a transaction-mode pooler) and keeps a row per id.  Two
instances writing the same event (a redelivery racing its first delivery) cannot both pass the
check: the event's user is in both batches, and the per-user lock that opens each transaction
(``consent.lock_users``) is held until commit, so the second one checks after the first
committed (each statement sees what was committed before it began).  Were a duplicate ever to reach the COPY,
the primary key would refuse it; the writer then writes the batch event by event, and the
check skips the stored one.

An ``Answer``'s analytics row shares its message's id and transaction, so a stored message
means its analytics row is stored too; only old-style ``AnalyticsEvent`` ids are looked up.

Each batch first upserts the users of its messages in id order; that row lock serializes
instances writing for the same user, so two of them never start two conversations at once.
(Analytics alone touch no user row; the per-user lock ``consent.screen`` takes first
serializes them.)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from pam_shared.events import AnalyticsEvent, Event, UserMessage
from pam_shared.privacy import Privacy

from pam_persistence import consent
from pam_persistence.conversations import Span, place
from pam_persistence.rows import ANALYTICS_COLUMNS, MESSAGE_COLUMNS, Message, Split, analytics_row, message_row, moment


@dataclass(frozen=True, slots=True)
class Parked:
    """An event that cannot be stored, kept byte for byte with the reason (``dead_letters``)."""

    stream: str
    seq: int
    subject: str
    data: bytes
    error: str


@dataclass(frozen=True, slots=True)
class Keeping:
    """What screening a batch needs (``consent``): the fences' salt, the default privacy settings."""

    salt: str
    default: Privacy


async def write(
    pool: asyncpg.Pool, events: Sequence[Event], parked: Sequence[Parked], gap: timedelta, keeping: Keeping
) -> set[str]:
    """Store one batch atomically, as its users allow: all of it is committed, or none of it.
    Returns the erased users whose events it dropped."""
    async with pool.acquire() as conn, conn.transaction():
        screened = await consent.screen(conn, events, keeping.salt, keeping.default)
        await _write(conn, Split.of(screened.events), parked, gap)
    return screened.fenced


async def _write(conn: asyncpg.Connection, split: Split, parked: Sequence[Parked], gap: timedelta) -> None:
    await _touch_users(conn, split.messages)
    old = await _stored(conn, _IN_MESSAGES, [m.event_id for m in split.messages])
    old |= await _stored(conn, _IN_ANALYTICS, [e.event_id for e in split.analytics if isinstance(e, AnalyticsEvent)])
    fresh = [m for m in split.messages if m.event_id not in old]
    conversations = await _place(conn, fresh, gap)
    if fresh:
        rows = [message_row(m, conversations[m.event_id]) for m in fresh]
        await conn.copy_records_to_table("messages", records=rows, columns=MESSAGE_COLUMNS)
    if measured := [analytics_row(e) for e in split.analytics if e.event_id not in old]:
        await conn.copy_records_to_table("analytics_events", records=measured, columns=ANALYTICS_COLUMNS)
    await _insert_parked(conn, parked)


async def _touch_users(conn: asyncpg.Connection, messages: Sequence[Message]) -> None:
    """The users whose messages are stored: analytics alone make no ``users`` row (a user who
    keeps their conversations to themselves has none; anonymous analytics have no user)."""
    seen: dict[str, tuple[datetime, datetime]] = {}
    for message in messages:
        at = moment(message.created_at)
        first, last = seen.get(message.user_id, (at, at))
        seen[message.user_id] = (min(first, at), max(last, at))
    if seen:
        ids = sorted(seen)
        await conn.execute(_USERS, ids, [seen[i][0] for i in ids], [seen[i][1] for i in ids])


async def _stored(conn: asyncpg.Connection, query: str, ids: list[str]) -> set[str]:
    """Which of ``ids`` a table already holds."""
    return {row["id"] for row in await conn.fetch(query, ids)} if ids else set()


async def _place(conn: asyncpg.Connection, messages: list[Message], gap: timedelta) -> dict[str, uuid.UUID]:
    """Each message's conversation id; conversations started or stretched are written back."""
    if not messages:
        return {}
    times = [moment(m.created_at) for m in messages]
    users = sorted({m.user_id for m in messages})
    spans: dict[str, list[Span]] = {}
    for row in await conn.fetch(_SPANS, users, min(times) - gap, max(times) + gap):
        spans.setdefault(row["user_id"], []).append(Span(**row))
    placed = {}
    for message in sorted(messages, key=lambda m: m.created_at):
        region = message.region if isinstance(message, UserMessage) else ""
        at = moment(message.created_at)
        placed[message.event_id] = place(spans.setdefault(message.user_id, []), message.user_id, at, region, gap).id
    changed = [s for user_spans in spans.values() for s in user_spans if s.changed]
    if changed:
        rows = [(s.id, s.user_id, s.started_at, s.last_activity_at, s.region) for s in changed]
        await conn.execute(_CONVERSATIONS, *_columns(rows))
    return placed


async def _insert_parked(conn: asyncpg.Connection, parked: Sequence[Parked]) -> None:
    if parked:
        rows = [(p.stream, p.seq, p.subject, p.data, p.error) for p in parked]
        await conn.executemany(_PARKED, rows)


def _columns(rows: Sequence[tuple[object, ...]]) -> list[list[object]]:
    """Rows to one list per column, the shape ``unnest`` takes."""
    return [list(column) for column in zip(*rows, strict=True)]


_USERS = """
INSERT INTO users (id, first_seen_at, last_seen_at)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) ORDER BY 1
ON CONFLICT (id) DO UPDATE SET
    first_seen_at = LEAST(users.first_seen_at, EXCLUDED.first_seen_at),
    last_seen_at = GREATEST(users.last_seen_at, EXCLUDED.last_seen_at)
"""

_SPANS = """
SELECT id, user_id, started_at, last_activity_at, region FROM conversations
WHERE user_id = ANY($1::text[]) AND last_activity_at >= $2 AND started_at <= $3
"""

_CONVERSATIONS = """
INSERT INTO conversations (id, user_id, started_at, last_activity_at, region)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[])
ON CONFLICT (id) DO UPDATE SET
    started_at = LEAST(conversations.started_at, EXCLUDED.started_at),
    last_activity_at = GREATEST(conversations.last_activity_at, EXCLUDED.last_activity_at),
    region = CASE WHEN conversations.region = '' THEN EXCLUDED.region ELSE conversations.region END
"""

_IN_MESSAGES = """
SELECT stored.id FROM unnest($1::text[]) AS wanted (id),
    LATERAL (SELECT id FROM messages WHERE id = wanted.id LIMIT 1) AS stored
"""
"""An index probe per id, whatever the planner thinks of the table: ``id = ANY($1)`` on a table
not yet analyzed is a sequential scan (measured: 120 ms at 20,000 rows, 1.8 s at 200,000)."""

_IN_ANALYTICS = """
SELECT stored.id FROM unnest($1::text[]) AS wanted (id),
    LATERAL (SELECT id FROM analytics_events WHERE id = wanted.id LIMIT 1) AS stored
"""

_PARKED = """
INSERT INTO dead_letters (stream, stream_seq, subject, data, error) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (stream, stream_seq) DO NOTHING
"""
