"""Writing a batch of events to PostgreSQL in one transaction.

Redelivery is harmless: messages already stored are skipped before they are placed in
a conversation, and every insert also says ``ON CONFLICT DO NOTHING``.  Rows go in as
one ``INSERT ... SELECT FROM unnest(arrays)`` per table, picked by measurement
(``bench/persistence_ingest.py``): ``executemany`` is 1.3-2x slower at 500 rows;
COPY into a temporary table + ``INSERT ... SELECT`` ties with it at 500 rows but is
1.4-2.5x slower at 20, the size steady traffic makes; and unnest needs no temporary
table, so it also works behind a transaction-mode pooler.

Each batch first upserts its users in id order; that row lock serializes instances
writing for the same user, so two of them never start two conversations at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
from pam_shared.events import AnalyticsEvent, AssistantMessage, Event, UserMessage

from pam_persistence.conversations import Span, place

Message = UserMessage | AssistantMessage

_actions_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Parked:
    """An event that cannot be stored, kept byte for byte with the reason (``dead_letters``)."""

    stream: str
    seq: int
    subject: str
    data: bytes
    error: str


def moment(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


async def write(pool: asyncpg.Pool, events: Sequence[Event], parked: Sequence[Parked], gap: timedelta) -> None:
    """Store one batch atomically: all of it is committed, or none of it."""
    messages = list({e.event_id: e for e in events if not isinstance(e, AnalyticsEvent)}.values())
    analytics = [e for e in events if isinstance(e, AnalyticsEvent)]
    async with pool.acquire() as conn, conn.transaction():
        await _touch_users(conn, events)
        fresh = await _unstored(conn, messages)
        conversations = await _place(conn, fresh, gap)
        await _insert_messages(conn, fresh, conversations)
        await _insert_analytics(conn, analytics)
        await _insert_parked(conn, parked)


async def _touch_users(conn: asyncpg.Connection, events: Sequence[Event]) -> None:
    seen: dict[str, tuple[datetime, datetime]] = {}
    for event in events:
        at = moment(event.created_at)
        first, last = seen.get(event.user_id, (at, at))
        seen[event.user_id] = (min(first, at), max(last, at))
    if seen:
        ids = sorted(seen)
        await conn.execute(_USERS, ids, [seen[i][0] for i in ids], [seen[i][1] for i in ids])


async def _unstored(conn: asyncpg.Connection, messages: list[Message]) -> list[Message]:
    if not messages:
        return []
    rows = await conn.fetch("SELECT id FROM messages WHERE id = ANY($1::text[])", [m.event_id for m in messages])
    stored = {row["id"] for row in rows}
    return [m for m in messages if m.event_id not in stored]


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


async def _insert_messages(conn: asyncpg.Connection, messages: list[Message], placed: dict[str, uuid.UUID]) -> None:
    if messages:
        rows = [_message_row(m, placed[m.event_id]) for m in messages]
        await conn.execute(_MESSAGES, *_columns(rows))


def _message_row(m: Message, conversation_id: uuid.UUID) -> tuple[object, ...]:
    at = moment(m.created_at)
    if isinstance(m, UserMessage):
        return (m.event_id, conversation_id, m.user_id, m.session_id, "user", m.content, None,
                m.client_message_id, None, m.current_page, None, at, m.trace_id)  # fmt: skip
    actions = _actions_encoder.encode(m.ui_actions).decode() if m.ui_actions else None
    return (m.event_id, conversation_id, m.user_id, m.session_id, "assistant", m.content, m.intent,
            None, m.reply_to, "", actions, at, m.trace_id)  # fmt: skip


async def _insert_analytics(conn: asyncpg.Connection, events: list[AnalyticsEvent]) -> None:
    if events:
        rows = [
            (e.event_id, e.user_id, e.session_id, e.message_id, e.intent, e.engine, e.model, e.orchestrator,
             e.total_ms, e.time_to_first_chunk_ms, e.tokens_in, e.tokens_out, e.error_code, moment(e.created_at),
             e.trace_id)
            for e in events
        ]  # fmt: skip
        await conn.execute(_ANALYTICS, *_columns(rows))


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

_MESSAGES = """
INSERT INTO messages (id, conversation_id, user_id, session_id, role, content, intent,
                      client_message_id, reply_to, current_page, ui_actions, created_at, trace_id)
SELECT id, conversation_id, user_id, session_id, role, content, intent,
       client_message_id, reply_to, current_page, ui_actions::jsonb, created_at, trace_id
FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::text[])
    AS batch (id, conversation_id, user_id, session_id, role, content, intent,
              client_message_id, reply_to, current_page, ui_actions, created_at, trace_id)
ON CONFLICT (id) DO NOTHING
"""

_ANALYTICS = """
INSERT INTO analytics_events (id, user_id, session_id, message_id, intent, engine, model, orchestrator,
                              total_ms, time_to_first_chunk_ms, tokens_in, tokens_out, error_code, created_at,
                              trace_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::text[], $9::float8[], $10::float8[], $11::int4[], $12::int4[], $13::text[],
                     $14::timestamptz[], $15::text[])
ON CONFLICT (id) DO NOTHING
"""

_PARKED = """
INSERT INTO dead_letters (stream, stream_seq, subject, data, error) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (stream, stream_seq) DO NOTHING
"""
