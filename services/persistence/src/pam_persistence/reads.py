"""Reading back: conversation history for the orchestrator, pages for the read API, analytics.

Pages are keyset-paginated: a cursor is ``<microseconds since epoch>.<id>`` of the last
row served, so a page costs the same however deep it is.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import asyncpg
import msgspec
from pam_shared.internal import HistoryReply, HistoryRequest, Turn
from pam_shared.protocol import UiAction
from pam_shared.read_api import (
    AnalyticsReply,
    AnalyticsRequest,
    Conversation,
    ConversationsReply,
    ConversationsRequest,
    DayCount,
    MessagesReply,
    MessagesRequest,
    Percentiles,
    StoredMessage,
)

from pam_persistence.conversations import Activity

READ_TIMEOUT_SECONDS = 5.0
MAX_HISTORY_TURNS = 100
MAX_PAGE = 200
MAX_DAYS = 366
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_actions_decoder = msgspec.json.Decoder(list[UiAction])

Placed = TypeVar("Placed", bound=StoredMessage)


class BadCursor(ValueError):
    """A cursor this service did not make."""


async def history(pool: asyncpg.Pool, query: HistoryRequest, activity: Activity) -> HistoryReply:
    """The last turns of the conversation the user is in at ``before``, oldest first."""
    before = datetime.fromtimestamp(query.before, UTC)
    limit = max(0, min(query.limit, MAX_HISTORY_TURNS))
    idle = before - activity.gap
    rows = await pool.fetch(
        _HISTORY, query.user_id, before, idle, limit, idle - activity.resolution, timeout=READ_TIMEOUT_SECONDS
    )
    if not rows:
        return HistoryReply(conversation_id=None)
    turns = [Turn(role=r["role"], content=r["content"]) for r in rows if r["role"] is not None]
    return HistoryReply(conversation_id=str(rows[0]["conversation_id"]), turns=turns)


async def conversations(pool: asyncpg.Pool, query: ConversationsRequest) -> ConversationsReply:
    """One page of the user's conversations, the most recently active first."""
    after_at, after_key = parse_cursor(query.cursor)
    after_id = as_uuid(after_key) if after_key is not None else None
    if after_key is not None and after_id is None:
        raise BadCursor(query.cursor)
    limit = max(1, min(query.limit, MAX_PAGE))
    rows = await pool.fetch(_CONVERSATIONS, query.user_id, after_at, after_id, limit + 1, timeout=READ_TIMEOUT_SECONDS)
    page = [Conversation(**{**row, "id": str(row["id"])}) for row in rows[:limit]]
    last = page[-1] if len(rows) > limit else None
    return ConversationsReply(page, cursor(last.last_activity_at, last.id) if last else None)


async def messages(pool: asyncpg.Pool, query: MessagesRequest) -> MessagesReply:
    """One page of a conversation's messages, oldest first; not found unless it is the user's."""
    after_at, after_id = parse_cursor(query.cursor)
    conversation_id = as_uuid(query.conversation_id)
    if conversation_id is None:
        return MessagesReply(found=False)
    limit = max(1, min(query.limit, MAX_PAGE))
    async with pool.acquire() as conn:
        owned = await conn.fetchval(_OWNED, conversation_id, query.user_id, timeout=READ_TIMEOUT_SECONDS)
        if not owned:
            return MessagesReply(found=False)
        rows = await conn.fetch(_MESSAGES, conversation_id, after_at, after_id, limit + 1, timeout=READ_TIMEOUT_SECONDS)
        tree = await load_tree(conn, conversation_id)
    page = [tree.place(_stored_message(row)) for row in rows[:limit]]
    last = page[-1] if len(rows) > limit else None
    return MessagesReply(True, page, cursor(last.created_at, last.id) if last else None)


def _stored_message(row: asyncpg.Record) -> StoredMessage:
    actions = _actions_decoder.decode(row["ui_actions"]) if row["ui_actions"] else []
    return StoredMessage(**{**row, "ui_actions": actions})


class Tree:
    """A conversation's messages as a tree.  An answer follows the user message it names; an
    edited message follows what the one it replaces followed; any other message (and answers
    stored before answers named their question) follows the one before it in time, which is
    always on the branch the user was on.  The current branch leads to the latest message."""

    def __init__(self, rows: list[asyncpg.Record]) -> None:
        self.parent: dict[str, str | None] = {}
        questions: dict[str, str] = {}  # a user message's id, and its client id, to its id
        previous: str | None = None
        for row in rows:
            self.parent[row["id"]] = self._parent_of(row, questions, previous)
            if row["role"] == "user":
                questions[row["id"]] = row["id"]
                if row["client_message_id"]:
                    questions[row["client_message_id"]] = row["id"]
            previous = row["id"]
        self.children: dict[str | None, list[str]] = {}
        for child, parent in self.parent.items():
            self.children.setdefault(parent, []).append(child)
        self.current: set[str] = set()
        while previous is not None:
            self.current.add(previous)
            previous = self.parent[previous]

    def _parent_of(self, row: asyncpg.Record, questions: dict[str, str], previous: str | None) -> str | None:
        if row["parent_id"] in self.parent:
            return str(row["parent_id"])
        if (edited := questions.get(row["edit_of"] or "")) is not None:
            return self.parent[edited]
        return previous

    def place(self, message: Placed) -> Placed:
        parent = self.parent.get(message.id)
        siblings = [m for m in self.children.get(parent, []) if m != message.id]
        return msgspec.structs.replace(message, parent_id=parent, siblings=siblings, current=message.id in self.current)


async def load_tree(conn: asyncpg.Connection, conversation_id: uuid.UUID) -> Tree:
    return Tree(await conn.fetch(_TREE, conversation_id, timeout=READ_TIMEOUT_SECONDS))


async def analytics(pool: asyncpg.Pool, query: AnalyticsRequest) -> AnalyticsReply:
    """Everyone's activity over the last ``days`` days (UTC days, today included)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = today - timedelta(days=max(1, min(query.days, MAX_DAYS)) - 1)
    async with pool.acquire() as conn:
        days = await conn.fetch(_PER_DAY, since, timeout=READ_TIMEOUT_SECONDS)
        intents = await conn.fetch(_INTENTS, since, timeout=READ_TIMEOUT_SECONDS)
        errors = await conn.fetch(_ERRORS, since, timeout=READ_TIMEOUT_SECONDS)
        latency = await conn.fetchrow(_LATENCY, since, timeout=READ_TIMEOUT_SECONDS)
    return AnalyticsReply(
        since=since,
        messages_per_day=[DayCount(**row) for row in days],
        intents={row["intent"]: row["count"] for row in intents},
        errors={row["error_code"]: row["count"] for row in errors},
        total_ms=Percentiles(latency["total_count"], *(latency["total"] or [None] * 3)),
        first_chunk_ms=Percentiles(latency["first_count"], *(latency["first"] or [None] * 3)),
    )


def cursor(at: datetime, key: str) -> str:
    """A row's place in a keyset order: its time and its id."""
    return f"{(at - EPOCH) // timedelta(microseconds=1)}.{key}"


def parse_cursor(cursor: str | None) -> tuple[datetime | None, str | None]:
    if cursor is None:
        return None, None
    micros, _, key = cursor.partition(".")
    try:
        return EPOCH + timedelta(microseconds=int(micros)), key
    except (ValueError, OverflowError):
        raise BadCursor(cursor) from None


def as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


_HISTORY = """
WITH current AS (
    SELECT id FROM conversations AS c
    WHERE user_id = $1 AND started_at <= $2 AND last_activity_at >= $5
      AND (last_activity_at >= $3 OR EXISTS (SELECT FROM messages WHERE conversation_id = c.id AND created_at >= $3))
    ORDER BY last_activity_at DESC LIMIT 1
)
SELECT current.id AS conversation_id, recent.role, recent.content
FROM current LEFT JOIN LATERAL (
    SELECT role, content, created_at, id FROM messages
    WHERE conversation_id = current.id AND created_at < $2 AND content <> ''
    ORDER BY created_at DESC, id DESC LIMIT $4
) recent ON true
ORDER BY recent.created_at, recent.id
"""
"""A stored ``last_activity_at`` lags its conversation's last message by up to the resolution
(``conversations``): one that may be within the idle gap only by that lag ($5) is asked its
messages."""

_CONVERSATIONS = """
SELECT c.id, c.started_at, c.last_activity_at, c.region,
       (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count,
       coalesce((SELECT left(m.content, 120) FROM messages m
                 WHERE m.conversation_id = c.id AND m.role = 'user'
                 ORDER BY m.created_at LIMIT 1), '') AS preview
FROM conversations c
WHERE c.user_id = $1 AND ($2::timestamptz IS NULL OR (c.last_activity_at, c.id) < ($2, $3::uuid))
ORDER BY c.last_activity_at DESC, c.id DESC
LIMIT $4
"""

_OWNED = "SELECT true FROM conversations WHERE id = $1 AND user_id = $2"

_MESSAGES = """
SELECT id, role, content, intent, created_at, client_message_id, reply_to, ui_actions, state
FROM messages
WHERE conversation_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::text))
ORDER BY created_at, id
LIMIT $4
"""

_TREE = """
SELECT id, role, client_message_id, parent_id, edit_of FROM messages WHERE conversation_id = $1 ORDER BY created_at, id
"""

_PER_DAY = """
SELECT (created_at AT TIME ZONE 'UTC')::date AS day,
       count(*) FILTER (WHERE role = 'user') AS user_messages,
       count(*) FILTER (WHERE role = 'assistant') AS assistant_messages
FROM messages WHERE created_at >= $1
GROUP BY 1 ORDER BY 1
"""

_INTENTS = "SELECT intent, count(*) FROM analytics_events WHERE created_at >= $1 GROUP BY intent ORDER BY 2 DESC"

_ERRORS = """
SELECT error_code, count(*) FROM analytics_events
WHERE created_at >= $1 AND error_code IS NOT NULL GROUP BY error_code ORDER BY 2 DESC
"""

_LATENCY = """
SELECT count(total_ms) FILTER (WHERE error_code IS NULL) AS total_count,
       percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY total_ms)
           FILTER (WHERE error_code IS NULL) AS total,
       count(time_to_first_chunk_ms) FILTER (WHERE error_code IS NULL) AS first_count,
       percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY time_to_first_chunk_ms)
           FILTER (WHERE error_code IS NULL) AS first
FROM analytics_events WHERE created_at >= $1
"""
