"""The read API's messages between the gateway and persistence (request-reply over NATS).

Times are timezone-aware datetimes, so msgspec writes them as RFC 3339 strings and the
gateway can hand a reply to an HTTP client as it is.  Cursors are opaque strings made by
persistence: pass ``next_cursor`` back to get the next page.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

import msgspec

from pam_shared.budget import Usage
from pam_shared.protocol import UiAction
from pam_shared.timers import Timer


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


class ExportRequest(msgspec.Struct):
    """Gateway -> persistence: the page of ``part`` after ``cursor`` (None: the first)."""

    user_id: str
    part: Literal["conversations", "analytics"]
    cursor: str | None = None
    limit: int = 200
    """Rows at most: messages, and conversations started on the page."""


class PrivacyRecord(msgspec.Struct):
    """The user's privacy settings as stored; ``updated_at`` None: never chosen, these are the defaults."""

    store_conversations: bool
    analytics: bool
    updated_at: datetime | None = None


class UserRecord(msgspec.Struct):
    """What persistence holds about the user besides conversations and analytics."""

    privacy: PrivacyRecord
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None


class ExportedMessage(StoredMessage):
    """A stored message.  ``parent_id`` is the message it follows, ``siblings`` the other messages
    that follow the same one (a regenerated answer, an edited question), ``current`` whether it is
    on the branch that leads to the latest message, as the read API gives them; ``state`` is how an
    answer ended (``complete``, or how it was cut short); ``edit_of`` names the message an edited
    one replaces (by the id its client gave it).  The session it was sent in, the app page the
    user was on and the trace id of its chat (the key to its log lines) are kept too."""

    edit_of: str | None = None
    session_id: str = ""
    current_page: str = ""
    trace_id: str | None = None


class ExportedConversation(msgspec.Struct):
    """A conversation and its messages, oldest first."""

    id: str
    started_at: datetime
    last_activity_at: datetime
    region: str
    messages: list[ExportedMessage] = []


class AnalyticsRecord(msgspec.Struct):
    """One answer's (or one failure's) measurements, as stored in ``analytics_events``."""

    id: str
    session_id: str
    message_id: str
    intent: str
    engine: str
    model: str | None
    orchestrator: str
    endpoint: str | None
    total_ms: float
    time_to_first_chunk_ms: float | None
    tokens_in: int | None
    tokens_out: int | None
    cached_tokens: int | None
    error_code: str | None
    created_at: datetime
    trace_id: str | None = None


class ExportPage(msgspec.Struct):
    """One page of an export.  Conversation pages hold messages in order (conversations by
    ``started_at``, messages by ``created_at``); a page's first conversation may go on from
    the page before (the same ``id``).  The first conversations page carries ``user``.
    ``next_cursor`` None: nothing after this page."""

    user: UserRecord | None = None
    conversations: list[ExportedConversation] = []
    analytics: list[AnalyticsRecord] = []
    next_cursor: str | None = None


class ExportHead(msgspec.Struct):
    """The export's fields before its conversations (``Export`` is the whole document)."""

    user_id: str
    exported_at: datetime
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    privacy: PrivacyRecord
    usage: Usage
    timers: list[Timer]


class Export(ExportHead):
    """``GET /api/v1/users/me/export``: everything PAM holds about the user, as one JSON document
    with its fields in this order.  ``first_seen_at`` and ``last_seen_at`` are the times of the
    first and the latest message or measurement stored of theirs (null: none).  Times are UTC."""

    conversations: list[ExportedConversation]
    analytics: list[AnalyticsRecord]


query_encoder = msgspec.json.Encoder()
conversations_request_decoder = msgspec.json.Decoder(ConversationsRequest)
conversations_reply_decoder = msgspec.json.Decoder(ConversationsReply)
messages_request_decoder = msgspec.json.Decoder(MessagesRequest)
messages_reply_decoder = msgspec.json.Decoder(MessagesReply)
analytics_request_decoder = msgspec.json.Decoder(AnalyticsRequest)
analytics_reply_decoder = msgspec.json.Decoder(AnalyticsReply)
export_request_decoder = msgspec.json.Decoder(ExportRequest)
export_page_decoder = msgspec.json.Decoder(ExportPage)
