"""Export pages: everything stored about one user, one page per request, so neither this
service nor the gateway ever holds a whole history.

A page is bounded by rows and by the encoded size of its messages, so its reply stays under
NATS's max payload however long the messages are; it holds at least one message, so every
page gets further.  Each page is read in one read-only snapshot (its messages and their tree
agree); a message stored between pages is exported if it comes after the cursor.

Cursors are ``reads.cursor``s: the last conversation served (``<conversation>``, when it had
no messages) or the last message served and its conversation (``<conversation>.<message>``);
for analytics, the last row served.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import msgspec
from pam_shared.privacy import Privacy
from pam_shared.protocol import UiAction
from pam_shared.read_api import (
    AnalyticsRecord,
    ExportedConversation,
    ExportedMessage,
    ExportPage,
    ExportRequest,
    PrivacyRecord,
    UserRecord,
)

from pam_persistence.reads import (
    MAX_PAGE,
    READ_TIMEOUT_SECONDS,
    BadCursor,
    Tree,
    as_uuid,
    cursor,
    load_tree,
    parse_cursor,
)

PAGE_BYTES = 256 * 1024
"""A page's messages, encoded, at most (past its first message): a quarter of NATS's default max payload."""
PREFETCH_ROWS = 16
"""Messages fetched from PostgreSQL at a time: a page stops reading once it is full."""
HEAD_BYTES = 200
"""What a conversation's own fields add to a page, about."""
HEADS_AT_ONCE = 50

_actions_decoder = msgspec.json.Decoder(list[UiAction])
_sizer = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Position:
    """Where a conversations cursor points: a conversation, and the last message served in it."""

    started_at: datetime
    conversation_id: uuid.UUID
    message_at: datetime | None = None
    message_id: str | None = None


async def page(pool: asyncpg.Pool, query: ExportRequest, page_bytes: int = PAGE_BYTES) -> ExportPage:
    if query.part == "analytics":
        return await analytics(pool, query)
    return await conversations(pool, query, page_bytes)


async def conversations(pool: asyncpg.Pool, query: ExportRequest, page_bytes: int = PAGE_BYTES) -> ExportPage:
    """The user's conversations and messages after the cursor, as many as fit one page."""
    after = parse_position(query.cursor)
    taken = Taken(max(1, min(query.limit, MAX_PAGE)), page_bytes, query.cursor)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        user = await _user(conn, query.user_id) if query.cursor is None else None
        done = await _go_on(conn, taken, query.user_id, after) and await _following(conn, taken, query.user_id, after)
    return ExportPage(user=user, conversations=taken.conversations, next_cursor=None if done else taken.cursor)


class Taken:
    """One page as it fills, against its bounds."""

    def __init__(self, rows: int, size: int, after: str | None) -> None:
        self.rows_left, self.bytes_left = rows, size
        self.conversations: list[ExportedConversation] = []
        self.cursor = after
        self.holds_a_message = False

    @property
    def full(self) -> bool:
        return self.rows_left <= 0 or self.bytes_left <= 0

    def take(self, message: ExportedMessage) -> bool:
        """Count ``message`` in, unless the page is full or it would overflow a page that has one."""
        size = len(_sizer.encode(message))
        if self.full or (self.holds_a_message and size > self.bytes_left):
            return False
        self.rows_left, self.bytes_left, self.holds_a_message = self.rows_left - 1, self.bytes_left - size, True
        return True

    def add(self, conversation: ExportedConversation, at: str) -> None:
        self.conversations.append(conversation)
        self.rows_left, self.bytes_left, self.cursor = self.rows_left - 1, self.bytes_left - HEAD_BYTES, at


async def _go_on(conn: asyncpg.Connection, taken: Taken, user_id: str, after: Position | None) -> bool:
    """The rest of the conversation the cursor is in; False when the page filled first."""
    if after is None or after.message_id is None:
        return True
    head = await conn.fetchrow(_CONVERSATION, after.conversation_id, user_id, timeout=READ_TIMEOUT_SECONDS)
    return head is None or await _fill(conn, taken, head, after)  # gone (erased): go on after it


async def _following(conn: asyncpg.Connection, taken: Taken, user_id: str, after: Position | None) -> bool:
    """Conversations after the cursor's, each from its start; True when none is left."""
    at, key = (after.started_at, after.conversation_id) if after else (None, None)
    while not taken.full:
        heads = await conn.fetch(_CONVERSATIONS, user_id, at, key, HEADS_AT_ONCE, timeout=READ_TIMEOUT_SECONDS)
        if not heads:
            return True
        for head in heads:
            if taken.full or not await _fill(conn, taken, head, None):
                return False
            at, key = head["started_at"], head["id"]
    return False


async def _fill(conn: asyncpg.Connection, taken: Taken, head: asyncpg.Record, after: Position | None) -> bool:
    """One conversation's messages after ``after`` into the page; False when it filled first.
    A conversation joins the page with its first message (or, having none, whole), so a
    cursor never points at a conversation whose messages are still to come."""
    conversation = ExportedConversation(str(head["id"]), head["started_at"], head["last_activity_at"], head["region"])
    at = cursor(head["started_at"], conversation.id)
    tree: Tree = await load_tree(conn, head["id"])
    after_at, after_id = (after.message_at, after.message_id) if after else (None, None)
    query = conn.cursor(
        _MESSAGES,
        head["id"],
        after_at,
        after_id,
        taken.rows_left + 1,
        prefetch=PREFETCH_ROWS,
        timeout=READ_TIMEOUT_SECONDS,
    )
    whole = True
    async for row in query:
        message = tree.place(_message(row))
        if not taken.take(message):
            whole = False
            break
        conversation.messages.append(message)
    if conversation.messages or (whole and after is None):
        last = conversation.messages[-1] if conversation.messages else None
        taken.add(conversation, f"{at}.{cursor(last.created_at, last.id)}" if last else at)
    return whole


def _message(row: asyncpg.Record) -> ExportedMessage:
    actions = _actions_decoder.decode(row["ui_actions"]) if row["ui_actions"] else []
    return ExportedMessage(**{**row, "ui_actions": actions})


async def _user(conn: asyncpg.Connection, user_id: str) -> UserRecord:
    row = await conn.fetchrow(_USER, user_id, timeout=READ_TIMEOUT_SECONDS)
    if row["updated_at"] is None:  # never chosen: the defaults
        default = Privacy()
        privacy = PrivacyRecord(default.store_conversations, default.analytics)
    else:
        privacy = PrivacyRecord(row["store_conversations"], row["analytics"], row["updated_at"])
    return UserRecord(privacy, row["first_seen_at"], row["last_seen_at"])


async def analytics(pool: asyncpg.Pool, query: ExportRequest) -> ExportPage:
    """The user's analytics rows after the cursor, oldest first (rows are small: bounded by count)."""
    after_at, after_id = parse_cursor(query.cursor)
    limit = max(1, min(query.limit, MAX_PAGE))
    rows = await pool.fetch(_ANALYTICS, query.user_id, after_at, after_id, limit + 1, timeout=READ_TIMEOUT_SECONDS)
    records = [AnalyticsRecord(**row) for row in rows[:limit]]
    last = records[-1] if len(rows) > limit else None
    return ExportPage(analytics=records, next_cursor=cursor(last.created_at, last.id) if last else None)


def parse_position(text: str | None) -> Position | None:
    """A conversations cursor back into its parts; ``BadCursor`` for one this module did not make."""
    if text is None:
        return None
    micros, _, rest = text.partition(".")
    key, _, message = rest.partition(".")
    started_at, _ = parse_cursor(f"{micros}.")
    conversation_id = as_uuid(key)
    if started_at is None or conversation_id is None:
        raise BadCursor(text)
    if not message:
        return Position(started_at, conversation_id)
    message_at, message_id = parse_cursor(message)
    if not message_id:
        raise BadCursor(text)
    return Position(started_at, conversation_id, message_at, message_id)


_USER = """
SELECT u.first_seen_at, u.last_seen_at, p.store_conversations, p.analytics, p.updated_at
FROM (SELECT $1::text AS id) me
LEFT JOIN users u ON u.id = me.id
LEFT JOIN privacy_settings p ON p.user_id = me.id
"""

_CONVERSATION = "SELECT id, started_at, last_activity_at, region FROM conversations WHERE id = $1 AND user_id = $2"

_CONVERSATIONS = """
SELECT id, started_at, last_activity_at, region FROM conversations
WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (started_at, id) > ($2, $3::uuid))
ORDER BY started_at, id
LIMIT $4
"""

_MESSAGES = """
SELECT id, role, content, intent, created_at, client_message_id, reply_to, ui_actions, state,
       edit_of, session_id, current_page, trace_id
FROM messages
WHERE conversation_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::text))
ORDER BY created_at, id
LIMIT $4
"""

_ANALYTICS = """
SELECT id, session_id, message_id, intent, engine, model, orchestrator, endpoint, total_ms,
       time_to_first_chunk_ms, tokens_in, tokens_out, cached_tokens, error_code, created_at, trace_id
FROM analytics_events
WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::text))
ORDER BY created_at, id
LIMIT $4
"""
