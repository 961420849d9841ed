"""The WebSocket wire protocol: every frame a client sends or receives.

The shapes follow the seed document (docs/protocol.md is generated from this
module).  Frames are tagged by their ``type`` field; client frames decode into
one tagged union so an unknown ``type`` is rejected by msgspec itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

Label = Annotated[str, msgspec.Meta(max_length=64)]
Timestamp = Annotated[str, msgspec.Meta(max_length=40)]
Place = Annotated[str, msgspec.Meta(max_length=100)]


class SessionData(msgspec.Struct):
    """What the frontend tracks about the user's session (the seed's usePamSession).

    Bounded, so a client cannot make every prompt huge: 50 intents, 100 counters.
    """

    recent_intents: Annotated[list[Label], msgspec.Meta(max_length=50)] = []
    intent_counts: Annotated[dict[Label, int], msgspec.Meta(max_length=100)] = {}
    last_activity: Timestamp | None = None
    session_start: Timestamp | None = None


class UserLocation(msgspec.Struct):
    """Where the device is, as the WHEELS WINS frontend sends it (``lat``/``lng``, or
    ``latitude``/``longitude``); other fields it sends (accuracy, source ...) are ignored."""

    lat: float | None = None
    lng: float | None = None
    latitude: float | None = None
    longitude: float | None = None
    city: Place | None = None
    region: Place | None = None
    country: Place | None = None
    timezone: Label | None = None

    @property
    def coordinates(self) -> tuple[float, float] | None:
        lat = self.lat if self.lat is not None else self.latitude
        lng = self.lng if self.lng is not None else self.longitude
        return None if lat is None or lng is None else (lat, lng)


class ChatContext(msgspec.Struct):
    """Where the user is and what they have been doing, sent with every chat.

    ``timezone`` is an IANA name (``Australia/Brisbane``); ``input_mode`` is ``text`` or
    ``voice``. A ``user_location.region`` fills ``region`` when that is empty. Fields not
    listed here (``user_id``, ``environment``, ``timestamp`` ...) are accepted and ignored."""

    region: Place = ""
    current_page: Annotated[str, msgspec.Meta(max_length=500)] = ""
    session_data: SessionData = msgspec.field(default_factory=SessionData)
    user_location: UserLocation | None = None
    timezone: Label | None = None
    current_date: Place | None = None
    input_mode: Label | None = None

    def __post_init__(self) -> None:
        if not self.region and self.user_location is not None and self.user_location.region:
            self.region = self.user_location.region

    @property
    def zone(self) -> str | None:
        """The user's time zone: the context's, else the location's."""
        return self.timezone or (self.user_location.timezone if self.user_location else None)


# --- client -> server ---------------------------------------------------------


OnBusy = Literal["enqueue", "reject", "interrupt"]
"""What a chat does when an answer to the same user is still streaming: wait its turn (its
prompt then includes that exchange), be refused with ``busy``, or stop that answer and go next."""

MessageId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class Chat(msgspec.Struct, tag_field="type", tag="chat"):
    """A user's chat message. ``message_id`` is optional; replies carry it as ``reply_to``.
    ``on_busy`` overrides the server's ``PAM_DOUBLE_TEXTING`` for this chat."""

    message: Annotated[str, msgspec.Meta(min_length=1)]
    user_id: str | None = None
    context: ChatContext = msgspec.field(default_factory=ChatContext)
    message_id: str | None = None
    on_busy: OnBusy | None = None


class Regenerate(msgspec.Struct, tag_field="type", tag="regenerate"):
    """Answer the same user turn again.  ``answer_id`` names the answer to give again (its
    ``message_id``, or its chat's id that it carried as ``reply_to``); the earlier answer stays,
    as a sibling, and the conversation goes on from the new one.  ``message_id`` is this
    request's (its frames carry it as ``reply_to``)."""

    answer_id: MessageId
    message_id: str | None = None
    context: ChatContext = msgspec.field(default_factory=ChatContext)
    on_busy: OnBusy | None = None


class Edit(msgspec.Struct, tag_field="type", tag="edit"):
    """Replace an earlier user message with ``message`` and answer it: ``user_message_id`` is the
    message's id as the client sent it, or as the read API lists it.  The earlier message and what
    followed it stay, as a sibling branch; the conversation goes on from the new one."""

    user_message_id: MessageId
    message: Annotated[str, msgspec.Meta(min_length=1)]
    message_id: str | None = None
    context: ChatContext = msgspec.field(default_factory=ChatContext)
    on_busy: OnBusy | None = None


class Cancel(msgspec.Struct, tag_field="type", tag="cancel"):
    """Stop an answer (or a queued chat) of this user, from any of their sockets: ``message_id``
    is the chat's (its answer's frames carry it as ``reply_to``) or the answer's own."""

    message_id: MessageId


class Ping(msgspec.Struct, tag_field="type", tag="ping"):
    """Keep-alive; answered with ``pong``."""

    timestamp: str | None = None


class Auth(msgspec.Struct, tag_field="type", tag="auth"):
    """A fresh token for the open socket, sent before the old one expires."""

    token: str


class Resume(msgspec.Struct, tag_field="type", tag="resume"):
    """After a reconnect: send me every kept frame after ``last_event_id``, and the kept
    answers to the chats in ``pending`` (message ids still waiting for an answer), then live ones."""

    last_event_id: Annotated[int, msgspec.Meta(ge=0)]
    pending: Annotated[list[Annotated[str, msgspec.Meta(max_length=128)]], msgspec.Meta(max_length=100)] = []


ClientFrame = Chat | Ping | Auth | Resume | Cancel | Regenerate | Edit


# --- server -> client ---------------------------------------------------------


class Connection(msgspec.Struct, tag_field="type", tag="connection"):
    """Connection status; the first frame of every authenticated session."""

    status: Literal["connected", "disconnected"]
    message: str
    session_id: str | None = None
    user_id: str | None = None
    mode: Literal["live", "demo"] | None = None
    timestamp: str | None = None
    reason: str | None = None
    expires_at: float | None = None


class ChatChunk(msgspec.Struct, tag_field="type", tag="chat_chunk", omit_defaults=True):
    """One streamed piece of an answer; ``seq`` counts from 0 within ``message_id``.

    ``restart`` is true on the first chunk of an answer that started over on another worker
    because the first one died mid-answer: drop what was shown of that chat so far."""

    message_id: str
    seq: int
    delta: str
    reply_to: str | None = None
    restart: bool = False


Truncation = Literal["length", "deadline", "content_filter", "error", "stopped"]
"""Why an answer ended short of what the model meant to say (``ChatResponse.truncated``)."""


class ChatResponse(msgspec.Struct, tag_field="type", tag="chat_response"):
    """The whole answer; always the last frame of an answer that succeeded.

    ``truncated`` says the answer was cut short, holding what was said until then: ``length``
    when it reached ``PAM_MAX_COMPLETION_TOKENS``, ``deadline`` when it took longer than
    ``PAM_ANSWER_DEADLINE_SECONDS``, ``content_filter`` when the provider's content filter
    stopped it, ``error`` when the model's provider failed part-way (before the first word,
    PAM asks the next model endpoint instead, unseen), ``stopped`` when the user stopped it
    (``cancel``).
    """

    message: str
    timestamp: str
    message_id: str
    intent: str
    reply_to: str | None = None
    truncated: Truncation | None = None
    event_id: int | msgspec.UnsetType = msgspec.UNSET  # set by the gateway on kept frames


class UiAction(msgspec.Struct):
    """Something the frontend should do: go to a page, create or update a record."""

    type: Literal["navigate", "update", "create"]
    target: str
    data: Any = None


class UiActions(msgspec.Struct, tag_field="type", tag="ui_actions"):
    """Actions that belong to an answer; sent before its ``chat_response``."""

    actions: list[UiAction]
    message_id: str | None = None
    reply_to: str | None = None
    event_id: int | msgspec.UnsetType = msgspec.UNSET  # set by the gateway on kept frames


class ActionResponse(msgspec.Struct, tag_field="type", tag="action_response"):
    """The outcome of an action the backend carried out."""

    status: Literal["completed", "failed"]
    action_id: str | None = None
    result: Any = None
    event_id: int | msgspec.UnsetType = msgspec.UNSET  # set by the gateway on kept frames


class Error(msgspec.Struct, tag_field="type", tag="error"):
    """Something went wrong; ``code`` is stable, ``message`` is for people."""

    message: str
    code: str
    details: Any = None
    reply_to: str | None = None
    event_id: int | msgspec.UnsetType = msgspec.UNSET  # set by the gateway on kept frames


class Pong(msgspec.Struct, tag_field="type", tag="pong"):
    """The answer to ``ping``."""

    timestamp: str


class Queued(msgspec.Struct, tag_field="type", tag="queued"):
    """This chat waits for the answer before it (``on_busy: enqueue``); ``position`` 1 is next.
    Sent again when the position changes; the chat's answer follows as usual."""

    position: int
    reply_to: str | None = None


class Cancelled(msgspec.Struct, tag_field="type", tag="cancelled"):
    """A ``cancel`` took effect: the answer was ``stopped`` (its ``chat_response``, marked
    ``truncated: "stopped"``, reaches the socket that asked) or the queued chat ``dequeued``."""

    message_id: str
    status: Literal["stopped", "dequeued"]


Priority = Literal["low", "medium", "high", "urgent"]


class AlertAction(msgspec.Struct):
    """A button on an alert: ``label`` is shown, ``action`` says what it does (a page to open,
    say, with ``data``)."""

    label: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    action: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    data: Any = None


class ProactiveAlert(msgspec.Struct, tag_field="type", tag="proactive_alert"):
    """Something PAM noticed without being asked (fuel, weather, budget, safety): a push to
    every socket of the user, kept for resume; never sent in the middle of an answer."""

    alert_id: str
    category: Label
    priority: Priority
    message: str
    timestamp: str
    alert_type: Label = ""
    actions: list[AlertAction] = []
    event_id: int | msgspec.UnsetType = msgspec.UNSET  # set by the gateway on kept frames


class TimerExpired(msgspec.Struct, tag_field="type", tag="timer_expired"):
    """A timer (``kind: timer``) or an alarm (``kind: alarm``) the user set has gone off: a push
    to every socket of the user, kept for resume; ``due_at`` is when it was set to go off (UTC)."""

    timer_id: str
    kind: Literal["timer", "alarm"]
    label: str
    message: str
    due_at: str
    timestamp: str
    event_id: int | msgspec.UnsetType = msgspec.UNSET  # set by the gateway on kept frames


ServerFrame = (
    Connection
    | ChatChunk
    | ChatResponse
    | UiActions
    | ActionResponse
    | Error
    | Pong
    | Queued
    | Cancelled
    | ProactiveAlert
    | TimerExpired
)

CLIENT_TYPES: tuple[str, ...] = tuple(t.__struct_config__.tag for t in ClientFrame.__args__)
SERVER_TYPES: tuple[str, ...] = tuple(t.__struct_config__.tag for t in ServerFrame.__args__)
ANSWER_END_TYPES = ("chat_response", "error")
"""The frames that end an answer: nothing of that answer follows them."""

SERVICE_RESTART = 1012
TRY_AGAIN_LATER = 1013
UNAUTHORIZED = 4401
FORBIDDEN = 4403
RATE_LIMITED = 4429
ERASED = 4410
"""A socket's user was erased (``DELETE /api/v1/users/me``, or an operator's request)."""


def now_iso() -> str:
    """The wire's timestamps: UTC, milliseconds, ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


client_decoder = msgspec.json.Decoder(ClientFrame)
server_decoder = msgspec.json.Decoder(ServerFrame)
encoder = msgspec.json.Encoder()
