"""The WHEELS WINS dialect: the frames the shipped frontend (``pamService.ts``) sends and reads.

Served at ``/api/v1/pam/ws/{user_id}`` beside the seed's paths.  The client takes the first
frame carrying ``type: "error"``, ``error`` or any of ``response``/``message``/``content`` as
the answer to its pending chat, so only answers carry those fields; everything else the
gateway says (pongs, notices, pushes) carries none of them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from pam_shared.protocol import AlertAction, ChatContext, Priority, Truncation, UiAction

Text = Annotated[str, msgspec.Meta(max_length=100_000)]
Stamp = str | int | float | None
"""The client's timestamps: ISO strings or milliseconds since the epoch."""


# --- client -> server ---------------------------------------------------------


class WheelsChat(msgspec.Struct, tag_field="type", tag="chat"):
    """A chat: the text in ``message`` (or ``content``); ``stream`` asks for streamed frames."""

    message: Text | None = None
    content: Text | None = None
    user_id: str | None = None
    context: ChatContext = msgspec.field(default_factory=ChatContext)
    session_id: str | None = None
    message_id: str | None = None
    stream: bool = False
    streaming: bool = False
    timestamp: Stamp = None


class WheelsMessage(WheelsChat, tag="message"):
    """The older ``{"type": "message", "content": ...}`` form of a chat."""


class WheelsPing(msgspec.Struct, tag_field="type", tag="ping"):
    """Keep-alive, every 15-20 s; answered with ``pong`` echoing ``timestamp``."""

    timestamp: Stamp = None


class WheelsClientPong(msgspec.Struct, tag_field="type", tag="pong"):
    """The client's answer to a server ping (the gateway sends none): accepted."""

    timestamp: Stamp = None


class WheelsInit(msgspec.Struct, tag_field="type", tag="init"):
    """Standing context for the socket; later chats fill what they leave out from it."""

    context: ChatContext = msgspec.field(default_factory=ChatContext)
    session_id: str | None = None


class WheelsContextUpdate(WheelsInit, tag="context_update"):
    """The standing context, replaced."""


class WheelsAuth(msgspec.Struct, tag_field="type", tag="auth"):
    """A fresh token for the open socket (without one, accepted and ignored)."""

    token: str | None = None


WheelsClientFrame = (
    WheelsChat | WheelsMessage | WheelsPing | WheelsClientPong | WheelsInit | WheelsContextUpdate | WheelsAuth
)


# --- server -> client ---------------------------------------------------------


class WheelsWelcome(msgspec.Struct, tag_field="type", tag="connection"):
    """The first frame of a socket, as the shipped backend sends it."""

    status: Literal["connected"]
    message: str
    timestamp: str
    session_id: str
    user_id: str
    mode: Literal["live", "demo"]


class WheelsAnswer(msgspec.Struct, tag_field="type", tag="chat_response"):
    """The answer: the same text in ``content``, ``message`` and ``response``, with its actions."""

    content: str
    message: str
    response: str
    ui_actions: list[UiAction]
    timestamp: str
    session_id: str
    message_id: str
    intent: str
    error: Literal[False] = False
    truncated: Truncation | None = None


class WheelsError(msgspec.Struct, tag_field="type", tag="error"):
    """A chat that could not be answered (its answer), or a bad frame while no chat waits."""

    message: str
    content: str
    response: str
    code: str
    error_code: str
    details: Any = None
    error: Literal[True] = True


class WheelsDelta(msgspec.Struct, tag_field="type", tag="chat_response_delta"):
    """A streamed piece of an answer, only for a chat that asked with ``stream``; the whole
    answer still ends it."""

    delta: str
    message_id: str
    seq: int
    restart: bool = False


class WheelsPong(msgspec.Struct, tag_field="type", tag="pong"):
    """The answer to ``ping``: its ``timestamp`` echoed as it came."""

    timestamp: Stamp = None


class WheelsNotice(msgspec.Struct, tag_field="type", tag="notice"):
    """What the gateway says that is not an answer (a token about to expire, a limit hit by a
    non-chat frame, a bad frame while a chat waits): no answer fields, so the client ignores it."""

    code: str
    details: Any = None


class WheelsStatus(msgspec.Struct, tag_field="type", tag="connection"):
    """The socket is going away (a restart): reconnect; no ``message``, so not an answer."""

    status: Literal["disconnected"]
    reason: str | None = None


class WheelsActions(msgspec.Struct, tag_field="type", tag="ui_actions"):
    """A push of UI actions outside any answer (ignored by the shipped client)."""

    actions: list[UiAction]
    event_id: int | None = None


class WheelsTimerExpired(msgspec.Struct, tag_field="type", tag="timer_expired"):
    """A timer or alarm went off (``handleTimerExpired``: a notification, a beep, a toast whose
    Dismiss posts ``timer_id`` to ``/api/v1/pam/internal/dismiss-timer``).  It has a
    ``message``: the gateway never sends it while a chat waits, only right after its answer."""

    timer_id: str
    timer_type: Literal["timer", "alarm"]
    label: str
    message: str
    scheduled_time: str
    timestamp: str
    event_id: int | None = None


class WheelsAlertContent(msgspec.Struct):
    """A ``proactive_alert``'s body, as ``handleProactiveAlert`` reads it."""

    category: str
    message: str
    priority: Priority
    actions: list[AlertAction]
    alert_type: str
    type: str = "proactive_alert"


class WheelsProactiveAlert(msgspec.Struct, tag_field="type", tag="proactive_alert"):
    """An alert (``handleProactiveAlert``: a toast by priority, with its action buttons).  It has
    a ``content``: like a timer, it waits while a chat does."""

    id: str
    timestamp: str
    content: WheelsAlertContent
    event_id: int | None = None


SERVER_FRAMES = (
    WheelsWelcome,
    WheelsAnswer,
    WheelsError,
    WheelsDelta,
    WheelsPong,
    WheelsNotice,
    WheelsStatus,
    WheelsActions,
    WheelsTimerExpired,
    WheelsProactiveAlert,
)


# --- REST ----------------------------------------------------------------------


class RestChatRequest(msgspec.Struct):
    """``POST /api/v1/pam/chat`` (and ``/api/v1/pam-simple/chat``), Bearer token in the header."""

    message: Annotated[str, msgspec.Meta(min_length=1, max_length=100_000)]
    user_id: str | None = None
    context: ChatContext = msgspec.field(default_factory=ChatContext)
    session_id: str | None = None
    message_id: str | None = None
    type: str | None = None


class RestChatResponse(msgspec.Struct):
    """The answer, as the shipped client reads it; an answer that failed has ``error: true``."""

    response: str
    message: str
    content: str
    ui_actions: list[UiAction]
    session_id: str
    message_id: str
    timestamp: str
    intent: str | None = None
    error: bool = False
    error_code: str | None = None
    truncated: str | None = None
    processing_time_ms: int = 0


wheels_decoder = msgspec.json.Decoder(WheelsClientFrame)
rest_chat_decoder = msgspec.json.Decoder(RestChatRequest)


class VoiceRequest(msgspec.Struct):
    """``POST /api/v1/pam/voice`` as ``voiceService.ts`` sends it: the answer's text (with Nari
    Dia's ``[S1] (excited)`` cues, which are dropped), ``speed_factor``, and Dia's own knobs
    (``temperature``, ``cfg_scale``, ``max_new_tokens``: accepted, ignored).  ``voice``: one of
    OpenAI's voice names, else the configured ``PAM_VOICE``."""

    text: Annotated[str, msgspec.Meta(min_length=1, max_length=100_000)]
    voice: str | None = None
    speed_factor: float | None = None
    temperature: float | None = None
    cfg_scale: float | None = None
    max_new_tokens: int | None = None


class VoiceResponse(msgspec.Struct):
    """What the client plays: ``audio`` is the WAV file's bytes as numbers (``new
    Uint8Array(data.audio)``); ``truncated`` when the text was cut at ``PAM_VOICE_MAX_CHARS``."""

    audio: list[int]
    duration: float
    cached: bool
    format: str = "wav"
    truncated: bool = False


voice_request_decoder = msgspec.json.Decoder(VoiceRequest)
