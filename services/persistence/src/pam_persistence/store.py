"""Writing a batch of events to PostgreSQL in one transaction.

A batch first takes its users' advisory locks (``consent.lock_users``), then reads what is known
of them in one statement (``known``: fences and privacy settings to screen by, ``users`` rows and
nearby conversations to keep books by), and writes a ``users`` or ``conversations`` row only
where it changes by more than the activity resolution (``conversations``): in a steady stream
of a user's messages, most batches write neither, only their rows by COPY.

Redelivery is harmless: the ids of a batch already stored are looked up first (one index
probe per id), and only the rest are placed in a conversation and written, by COPY straight
into ``messages`` and ``analytics_events``.  Picked by measurement (``bench/persistence_ingest.py``,
docs/performance.md): this "stored-id check + COPY" costs a fraction of ``INSERT ... ON
CONFLICT DO NOTHING`` from ``unnest`` arrays or from a COPY into a temporary table, needs no
temporary table (so it works behind a transaction-mode pooler) and keeps a row per id.  Two
instances writing the same event (a redelivery racing its first delivery) cannot both pass the
check: the event's user is in both batches, and the advisory lock each takes on its users first
is held until commit, so the second one checks after the first committed (each statement sees
what was committed before it began).  Were a duplicate ever to reach the COPY, the primary key
would refuse it; the writer then writes the batch event by event, and the check skips the
stored one.

An ``Answer``'s analytics row shares its message's id and transaction, so a stored message
means its analytics row is stored too; only old-style ``AnalyticsEvent`` ids are looked up.

The same locks serialize instances writing for the same user, so two of them never start two
conversations at once, and each reads what the other wrote.  Only stored messages make or move
a ``users`` row: analytics alone make none (a user who keeps their conversations to themselves
has none; anonymous analytics have no user).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from pam_shared.events import AnalyticsEvent, Event, UserMessage
from pam_shared.privacy import Privacy

from pam_persistence import consent, known
from pam_persistence.conversations import Activity, Span, place, unsure
from pam_persistence.known import Known
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
    pool: asyncpg.Pool, events: Sequence[Event], parked: Sequence[Parked], activity: Activity, keeping: Keeping
) -> set[str]:
    """Store one batch atomically, as its users allow: all of it is committed, or none of it.
    Returns the erased users whose events it dropped."""
    users = sorted({e.user_id for e in events if e.user_id})
    async with pool.acquire() as conn, conn.transaction():
        await consent.lock_users(conn, users)
        hashes = [consent.user_hash(keeping.salt, u) for u in users]
        held = await known.read(conn, users, hashes, _near(events, activity)) if users else {}
        screened = consent.screen(events, held, keeping.salt, keeping.default)
        await _write(conn, screened.events, held, parked, activity)
    return screened.fenced


def _near(events: Sequence[Event], activity: Activity) -> tuple[datetime, datetime] | None:
    """Between when a conversation the batch's messages may join was last active, as stored
    (up to the resolution before its last message)."""
    times = [e.created_at for e in events if not isinstance(e, AnalyticsEvent)]
    if not times:
        return None
    return moment(min(times)) - activity.gap - activity.resolution, moment(max(times)) + activity.gap


async def _write(
    conn: asyncpg.Connection,
    events: Sequence[Event],
    held: dict[str, Known],
    parked: Sequence[Parked],
    activity: Activity,
) -> None:
    split = Split.of(events)
    await _touch_users(conn, split.messages, held, activity.resolution)
    old = await _stored(conn, _IN_MESSAGES, [m.event_id for m in split.messages])
    old |= await _stored(conn, _IN_ANALYTICS, [e.event_id for e in split.analytics if isinstance(e, AnalyticsEvent)])
    fresh = [m for m in split.messages if m.event_id not in old]
    conversations = await _place(conn, fresh, held, activity)
    if fresh:
        rows = [message_row(m, conversations[m.event_id]) for m in fresh]
        await conn.copy_records_to_table("messages", records=rows, columns=MESSAGE_COLUMNS)
    if measured := [analytics_row(e) for e in split.analytics if e.event_id not in old]:
        await conn.copy_records_to_table("analytics_events", records=measured, columns=ANALYTICS_COLUMNS)
    await _insert_parked(conn, parked)


async def _touch_users(
    conn: asyncpg.Connection, messages: Sequence[Message], held: dict[str, Known], resolution: timedelta
) -> None:
    """Upsert the users of stored messages who are new, or seen earlier than stored, or later by
    more than ``resolution``."""
    seen: dict[str, tuple[datetime, datetime]] = {}
    for message in messages:
        at = moment(message.created_at)
        first, last = seen.get(message.user_id, (at, at))
        seen[message.user_id] = (min(first, at), max(last, at))
    ids = sorted(i for i, (first, last) in seen.items() if _moved(held.get(i), first, last, resolution))
    if ids:
        await conn.execute(_USERS, ids, [seen[i][0] for i in ids], [seen[i][1] for i in ids])


def _moved(user: Known | None, first: datetime, last: datetime, resolution: timedelta) -> bool:
    if user is None or user.seen is None:
        return True
    stored_first, stored_last = user.seen
    return first < stored_first or last - stored_last > resolution


async def _stored(conn: asyncpg.Connection, query: str, ids: list[str]) -> set[str]:
    """Which of ``ids`` a table already holds."""
    return {row["id"] for row in await conn.fetch(query, ids)} if ids else set()


async def _place(
    conn: asyncpg.Connection, messages: list[Message], held: dict[str, Known], activity: Activity
) -> dict[str, uuid.UUID]:
    """Each message's conversation id; conversations started, or stretched by more than the
    resolution, are written back."""
    if not messages:
        return {}
    spans = {user: held[user].spans if user in held else [] for user in {m.user_id for m in messages}}
    times: dict[str, list[datetime]] = {}
    for message in messages:
        times.setdefault(message.user_id, []).append(moment(message.created_at))
    await _resolve(conn, [s for user, at in times.items() for s in unsure(spans[user], at, activity)])
    placed = {}
    for message in sorted(messages, key=lambda m: m.created_at):
        region = message.region if isinstance(message, UserMessage) else ""
        at = moment(message.created_at)
        placed[message.event_id] = place(spans[message.user_id], message.user_id, at, region, activity.gap).id
    changed = [s for user_spans in spans.values() for s in user_spans if s.unwritten(activity.resolution)]
    if changed:
        rows = [(s.id, s.user_id, s.started_at, s.last_activity_at, s.region) for s in changed]
        await conn.execute(_CONVERSATIONS, *_columns(rows))
    return placed


async def _resolve(conn: asyncpg.Connection, spans: list[Span]) -> None:
    """The true ends of ``spans``: their last messages."""
    if spans:
        ends = {row["id"]: row["last"] for row in await conn.fetch(_ENDS, [s.id for s in spans])}
        for span in spans:
            if ends.get(span.id) is not None:
                span.resolved(ends[span.id])


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

_ENDS = """
SELECT c.id, (SELECT max(m.created_at) FROM messages AS m WHERE m.conversation_id = c.id) AS last
FROM unnest($1::uuid[]) AS c (id)
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
