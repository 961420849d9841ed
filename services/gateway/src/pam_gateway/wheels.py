"""The shipped WHEELS WINS client's dialect, translated to and from the seed's at the edge.

Reading: its chats (``message`` or ``content``), pings with numeric timestamps, ``init`` and
``context_update`` (a standing context later chats fill their gaps from), ``pong`` and ``auth``.
Writing: one answer frame per chat with its ``ui_actions`` inside (chunks only for a chat that
asked to stream), and everything else in shapes the client ignores while a chat waits
(``pam_shared.wheels`` says which fields it takes as an answer).
"""

from __future__ import annotations

import uuid

import msgspec
from pam_shared.protocol import (
    Auth,
    Chat,
    ChatChunk,
    ChatContext,
    ChatResponse,
    ClientFrame,
    Connection,
    Error,
    Ping,
    Pong,
    ProactiveAlert,
    Queued,
    TimerExpired,
    UiAction,
    UiActions,
    encoder,
    now_iso,
    server_decoder,
)
from pam_shared.wheels import (
    Stamp,
    WheelsActions,
    WheelsAlertContent,
    WheelsAnswer,
    WheelsAuth,
    WheelsChat,
    WheelsDelta,
    WheelsError,
    WheelsInit,
    WheelsNotice,
    WheelsPing,
    WheelsPong,
    WheelsProactiveAlert,
    WheelsStatus,
    WheelsTimerExpired,
    WheelsWelcome,
    wheels_decoder,
)

from pam_gateway.dialect import Put

ADVISORIES = frozenset({"token_expiring", "resume_gap"})
"""Error codes that are never an answer: always sent as notices."""


class WheelsDialect:
    """One socket of the shipped client; keeps what translating its answers needs."""

    refuse_at_handshake = True
    resends_over_rest = True
    __slots__ = ("_context", "_ping_stamp", "_session_id", "_waiting", "_streaming", "_made_up")

    def __init__(self) -> None:
        self._context = ChatContext()
        self._ping_stamp: Stamp = None
        self._session_id = ""
        self._waiting: dict[str, list[UiAction]] = {}  # chats not yet answered, and their actions so far
        self._streaming: set[str] = set()
        self._made_up: set[str] = set()  # message ids we gave chats that came without one

    def read(self, text: str) -> ClientFrame | None:
        frame = wheels_decoder.decode(text)
        if isinstance(frame, WheelsChat):
            return self._chat(frame)
        if type(frame) is WheelsPing:
            self._ping_stamp = frame.timestamp
            return Ping()
        if isinstance(frame, WheelsInit):
            self._context = frame.context
            return None
        if type(frame) is WheelsAuth and frame.token:
            return Auth(token=frame.token)
        return None  # a pong, or an auth frame without a token

    def _chat(self, frame: WheelsChat) -> Chat:
        text = frame.message or frame.content
        if not text:
            raise msgspec.ValidationError("a chat needs its text in `message` (or `content`)")
        message_id = frame.message_id
        if message_id is None:
            message_id = uuid.uuid4().hex
            self._made_up.add(message_id)
        self._waiting[message_id] = []
        if frame.stream or frame.streaming:
            self._streaming.add(message_id)
        context = _filled(frame.context, self._context)
        return Chat(message=text, user_id=frame.user_id, context=context, message_id=message_id)

    def client_message_id(self, chat: Chat) -> str | None:
        return None if chat.message_id in self._made_up else chat.message_id

    def write(self, put: Put, frame: bytes) -> None:
        out = self._translate(server_decoder.decode(frame))
        if out is not None:
            put(encoder.encode(out).decode())

    def _translate(self, frame: object) -> msgspec.Struct | None:
        if isinstance(frame, Connection):
            return self._connection(frame)
        if isinstance(frame, ChatChunk):
            return self._chunk(frame)
        if isinstance(frame, UiActions):
            return self._actions(frame)
        if isinstance(frame, ChatResponse):
            return self._answer(frame)
        if isinstance(frame, Error):
            return self._error(frame)
        if isinstance(frame, Pong):
            return WheelsPong(timestamp=self._ping_stamp)
        if isinstance(frame, Queued):
            return None  # the shipped client has no queue to show; the answer follows as usual
        if isinstance(frame, TimerExpired):
            return _timer_expired(frame)
        if isinstance(frame, ProactiveAlert):
            return _alert(frame)
        return frame if isinstance(frame, msgspec.Struct) else None

    def _connection(self, frame: Connection) -> msgspec.Struct:
        if frame.status == "disconnected":
            return WheelsStatus(status="disconnected", reason=frame.reason)
        self._session_id = frame.session_id or self._session_id
        return WheelsWelcome(
            status="connected",
            message=frame.message,
            timestamp=frame.timestamp or now_iso(),
            session_id=self._session_id,
            user_id=frame.user_id or "",
            mode=frame.mode or "live",
        )

    def _chunk(self, frame: ChatChunk) -> msgspec.Struct | None:
        if frame.reply_to not in self._streaming:
            return None
        return WheelsDelta(delta=frame.delta, message_id=frame.message_id, seq=frame.seq, restart=frame.restart)

    def _actions(self, frame: UiActions) -> msgspec.Struct | None:
        waiting = self._waiting.get(frame.reply_to or "")
        if waiting is None:  # a push, not part of an answer
            return WheelsActions(actions=frame.actions, event_id=frame.event_id or None)
        waiting.extend(frame.actions)
        return None

    def _answer(self, frame: ChatResponse) -> msgspec.Struct | None:
        if frame.reply_to not in self._waiting:
            return None  # answered already (a copy, or a replay): the client took the first
        actions = self._settle(frame.reply_to)
        text = frame.message
        return WheelsAnswer(
            content=text,
            message=text,
            response=text,
            ui_actions=actions,
            timestamp=frame.timestamp,
            session_id=self._session_id,
            message_id=frame.message_id,
            intent=frame.intent,
            truncated=frame.truncated,
        )

    def _error(self, frame: Error) -> msgspec.Struct:
        answers_a_chat = frame.reply_to in self._waiting
        if frame.code in ADVISORIES or (self._waiting and not answers_a_chat):
            return WheelsNotice(code=frame.code, details=frame.details)
        if answers_a_chat:
            self._settle(frame.reply_to)
        return WheelsError(
            message=frame.message,
            content=frame.message,
            response=frame.message,
            code=frame.code,
            error_code=frame.code,
            details=frame.details,
        )

    def _settle(self, message_id: str | None) -> list[UiAction]:
        self._streaming.discard(message_id or "")
        self._made_up.discard(message_id or "")
        return self._waiting.pop(message_id or "", [])


def _filled(context: ChatContext, standing: ChatContext) -> ChatContext:
    """A chat's context, with what it leaves empty taken from the socket's standing context."""
    gaps = {
        name: getattr(standing, name)
        for name in ("region", "current_page", "user_location", "timezone", "current_date", "input_mode")
        if not getattr(context, name) and getattr(standing, name)
    }
    return msgspec.structs.replace(context, **gaps) if gaps else context


def _timer_expired(frame: TimerExpired) -> WheelsTimerExpired:
    return WheelsTimerExpired(
        timer_id=frame.timer_id,
        timer_type=frame.kind,
        label=frame.label,
        message=frame.message,
        scheduled_time=frame.due_at,
        timestamp=frame.timestamp,
        event_id=frame.event_id or None,
    )


def _alert(frame: ProactiveAlert) -> WheelsProactiveAlert:
    content = WheelsAlertContent(
        category=frame.category,
        message=frame.message,
        priority=frame.priority,
        actions=frame.actions,
        alert_type=frame.alert_type or frame.category,
    )
    return WheelsProactiveAlert(
        id=frame.alert_id, timestamp=frame.timestamp, content=content, event_id=frame.event_id or None
    )
