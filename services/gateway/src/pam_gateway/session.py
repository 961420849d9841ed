"""One WebSocket session: authenticate, then read frames until the client leaves."""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec
from pam_shared import logs
from pam_shared.auth import AuthError, Identity, authenticate
from pam_shared.errors import error_frame
from pam_shared.events import UserMessage
from pam_shared.internal import ChatRequest
from pam_shared.protocol import Chat, Connection, Ping, Pong, client_decoder, encoder
from starlette.websockets import WebSocket, WebSocketState

from pam_gateway.outbox import Outbox

if TYPE_CHECKING:
    from pam_gateway.app import Gateway

log = logging.getLogger("pam.gateway.session")

UNAUTHORIZED = 4401
FORBIDDEN = 4403
KNOWN_TYPES = frozenset({"chat", "ping"})


class _Envelope(msgspec.Struct):
    type: str


_envelope_decoder = msgspec.json.Decoder(_Envelope)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Session:
    def __init__(self, gateway: Gateway, websocket: WebSocket, identity: Identity) -> None:
        self.gateway = gateway
        self.identity = identity
        self.id = secrets.token_hex(8)
        self.outbox = Outbox(websocket, gateway.settings.send_queue_bytes)
        self.log_extra = {"session_id": self.id, "user_id": identity.user_id}

    def send(self, frame: msgspec.Struct) -> None:
        self.outbox.put(encoder.encode(frame).decode())

    def send_error(self, code: str, details: object = None, reply_to: str | None = None) -> None:
        self.send(error_frame(code, details, reply_to))

    async def handle_text(self, text: str) -> None:
        try:
            frame = client_decoder.decode(text)
        except msgspec.DecodeError as exc:
            self._reject(text, exc)
            return
        if type(frame) is Chat:
            await self._chat(frame)
        elif type(frame) is Ping:
            self.send(Pong(timestamp=now_iso()))

    def _reject(self, text: str, exc: msgspec.DecodeError) -> None:
        """Say precisely what was wrong with a frame that did not decode."""
        if not isinstance(exc, msgspec.ValidationError):
            self.send_error("invalid_json")
            return
        try:
            kind = _envelope_decoder.decode(text).type
        except msgspec.DecodeError:
            kind = None
        if kind is not None and kind not in KNOWN_TYPES:
            self.send_error("unknown_type", {"type": kind[:64]})
        else:
            self.send_error("invalid_message", str(exc))

    async def _chat(self, chat: Chat) -> None:
        if chat.user_id is not None and chat.user_id != self.identity.user_id:
            self.send_error("user_mismatch", reply_to=chat.message_id)
            return
        relay = self.gateway.relay
        request = ChatRequest(
            request_id=relay.next_request_id(),
            session_id=self.id,
            user_id=self.identity.user_id,
            demo=self.identity.demo,
            message=chat.message,
            context=chat.context,
            received_at=time.time(),
            message_id=chat.message_id,
        )
        log.debug("chat received", extra={**self.log_extra, "marker": logs.INCOMING})
        if not self.identity.demo:
            self.gateway.journal.record(_user_message(request))
        await relay.send(request, self.outbox, chat.message_id)


def _user_message(request: ChatRequest) -> UserMessage:
    return UserMessage(
        event_id=uuid.uuid4().hex,
        session_id=request.session_id,
        user_id=request.user_id,
        content=request.message,
        created_at=request.received_at,
        client_message_id=request.message_id,
        region=request.context.region,
        current_page=request.context.current_page,
    )


async def serve(gateway: Gateway, websocket: WebSocket, path_user_id: str | None) -> None:
    """The whole life of one socket."""
    token = websocket.query_params.get("token")
    await websocket.accept()
    try:
        identity = authenticate(token, path_user_id, gateway.settings)
    except AuthError as exc:
        await _refuse(websocket, exc.code, gateway.settings.send_queue_bytes)
        return
    session = Session(gateway, websocket, identity)
    gateway.sessions.add(session)
    mode = "demo" if identity.demo else "live"
    log.info("socket opened (%s)", mode, extra={**session.log_extra, "marker": logs.CONNECTION})
    session.send(
        Connection(
            status="connected",
            message="Connected to PAM",
            session_id=session.id,
            user_id=identity.user_id,
            mode=mode,
            timestamp=now_iso(),
        )
    )
    try:
        await _read_frames(session, websocket)
    finally:
        gateway.sessions.discard(session)
        session.outbox.discard()
        log.info("socket closed", extra={**session.log_extra, "marker": logs.CONNECTION})


async def _read_frames(session: Session, websocket: WebSocket) -> None:
    limit = session.gateway.settings.max_message_bytes
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            session.send_error("binary_unsupported")
            continue
        if len(text) > limit // 4 and len(text.encode()) > limit:
            session.send_error("message_too_large", {"limit_bytes": limit})
            continue
        await session.handle_text(text)


async def _refuse(websocket: WebSocket, code: str, queue_bytes: int) -> None:
    log.info("socket refused: %s", code, extra={"marker": logs.ERROR})
    outbox = Outbox(websocket, queue_bytes)
    outbox.put(encoder.encode(error_frame(code)).decode())
    if websocket.client_state != WebSocketState.DISCONNECTED:
        await outbox.close(FORBIDDEN if code == "user_mismatch" else UNAUTHORIZED)
