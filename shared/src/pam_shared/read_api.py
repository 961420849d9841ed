"""The read API's messages between the gateway and persistence (request-reply over NATS).

Times are timezone-aware datetimes, so msgspec writes them as RFC 3339 strings and the
gateway can hand a reply to an HTTP client as it is.  Cursors are opaque strings made by
persistence: pass ``next_cursor`` back to get the next page.
"""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from pam_shared.protocol import UiAction


class ConversationsRequest(msgspec.Struct):
    user_id: str
    limit: int = 20
    cursor: str | None = None


class Conversation(msgspec.Struct):
    id: str
    started_at: datetime
    last_activity_at: datetime
    """Accurate to within ``PAM_ACTIVITY_RESOLUTION_SECONDS``: at most that much before the
    conversation's last message (persistence moves it only by more)."""
    region: str
    message_count: int
    preview: str
    """The start of the conversation's first user message."""


class ConversationsReply(msgspec.Struct):
    """A page of conversations, the most recently active first."""

    conversations: list[Conversation]
    next_cursor: str | None = None


class MessagesRequest(msgspec.Struct):
    user_id: str
    conversation_id: str
    limit: int = 100
    cursor: str | None = None


class StoredMessage(msgspec.Struct):
    """One message of a conversation, and its place in the conversation's tree: ``parent_id`` is
    the message it follows, ``siblings`` the other messages that follow the same one (a
    regenerated answer, an edited question), ``current`` whether it is on the branch the user is on
    (the one that leads to the latest message).  ``state`` is how an answer ended."""

    id: str
    role: str
    content: str
    intent: str | None
    created_at: datetime
    client_message_id: str | None = None
    reply_to: str | None = None
    ui_actions: list[UiAction] = []
    state: str | None = None
    parent_id: str | None = None
    siblings: list[str] = []
    current: bool = True


class MessagesReply(msgspec.Struct):
    """A page of messages, oldest first; ``found`` is false unless the conversation is the user's."""

    found: bool
    messages: list[StoredMessage] = []
    next_cursor: str | None = None


class AnalyticsRequest(msgspec.Struct):
    days: int = 30


class DayCount(msgspec.Struct):
    day: date
    user_messages: int
    assistant_messages: int


class Percentiles(msgspec.Struct):
    count: int
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None


class AnalyticsReply(msgspec.Struct):
    """Everyone's activity since ``since`` (days are UTC)."""

    since: datetime
    messages_per_day: list[DayCount]
    intents: dict[str, int]
    errors: dict[str, int]
    total_ms: Percentiles
    first_chunk_ms: Percentiles


query_encoder = msgspec.json.Encoder()
conversations_request_decoder = msgspec.json.Decoder(ConversationsRequest)
conversations_reply_decoder = msgspec.json.Decoder(ConversationsReply)
messages_request_decoder = msgspec.json.Decoder(MessagesRequest)
messages_reply_decoder = msgspec.json.Decoder(MessagesReply)
analytics_request_decoder = msgspec.json.Decoder(AnalyticsRequest)
analytics_reply_decoder = msgspec.json.Decoder(AnalyticsReply)
