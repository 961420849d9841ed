"""One WebSocket session: authenticate, then read frames until the client leaves."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec
from pam_shared import delivery, logs, tracing
from pam_shared.auth import AuthError, Identity, authenticate, verify_token
from pam_shared.delivery import with_event_id
from pam_shared.errors import error_frame
from pam_shared.events import UserMessage
from pam_shared.internal import ChatRequest, chat_request_encoder
from pam_shared.protocol import Auth, Chat, Connection, Ping, Pong, Resume, client_decoder, encoder
from starlette.websockets import WebSocket

from pam_gateway import metrics
from pam_gateway.outbox import Outbox
from pam_gateway.ratelimit import TokenBucket

if TYPE_CHECKING:
    from pam_gateway.app import Gateway

log = logging.getLogger("pam.gateway.session")

UNAUTHORIZED = 4401
FORBIDDEN = 4403
RATE_LIMITED = 4429
SERVICE_RESTART = 1012
KNOWN_TYPES = frozenset({"chat", "ping", "auth", "resume"})
RECENT_EVENT_IDS = 64
"""Event ids remembered per socket, so a frame reaching it twice (live and replayed) is sent once."""


class _Envelope(msgspec.Struct):
    type: str


_envelope_decoder = msgspec.json.Decoder(_Envelope)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Session:
    # Slots, and containers made only when first needed: thousands of idle sessions add up.
    __slots__ = (
        "gateway",
        "identity",
        "quota_key",
        "id",
        "outbox",
        "bucket",
        "_expiry",
        "opened",
        "messages",
        "errors",
        "inflight",
        "resumed",
        "_recent_ids",
        "_held",
    )

    def __init__(self, gateway: Gateway, outbox: Outbox, identity: Identity, client_ip: str) -> None:
        self.gateway = gateway
        self.identity = identity
        # Demo identities are fresh per socket, so their chats count against the client's address.
        self.quota_key = f"demo@{client_ip}" if identity.demo else identity.user_id
        self.id = secrets.token_hex(8)
        self.outbox = outbox
        settings = gateway.settings
        self.bucket = TokenBucket(settings.rate_burst, settings.rate_per_second)
        self._expiry: tuple[asyncio.TimerHandle, ...] = ()
        self.opened = time.monotonic()
        self.messages = 0
        self.errors = 0
        self.inflight: set[str] = set()
        self.resumed = False
        self._recent_ids: deque[str] | None = None
        self._held: list[tuple[bytes, str | None]] | None = None

    @property
    def log_extra(self) -> dict[str, str]:
        return {"session_id": self.id, "user_id": self.identity.user_id}

    def connected(self, message: str) -> Connection:
        """The ``connection`` frame that opens a session, and answers a token refresh."""
        identity = self.identity
        return Connection(
            status="connected",
            message=message,
            session_id=self.id,
            user_id=identity.user_id,
            mode="demo" if identity.demo else "live",
            timestamp=now_iso(),
            expires_at=identity.expires_at,
        )

    def send(self, frame: msgspec.Struct) -> None:
        self.outbox.put(encoder.encode(frame).decode())

    def send_error(self, code: str, details: object = None, reply_to: str | None = None) -> None:
        self.errors += 1
        metrics.errors.labels(code).inc()
        self.send(error_frame(code, details, reply_to))

    @property
    def user_id(self) -> str:
        return self.identity.user_id

    def deliver(self, frame: bytes, event_id: str | None) -> None:
        """Forward an encoded frame from NATS, stamped with its event id, once."""
        if self._held is not None:
            self._held.append((frame, event_id))  # a replay is running: keep order
            return
        if event_id is not None:
            if self._recent_ids is None:
                self._recent_ids = deque(maxlen=RECENT_EVENT_IDS)
            elif event_id in self._recent_ids:
                return
            self._recent_ids.append(event_id)
            frame = with_event_id(frame, event_id)
        self.outbox.put(frame.decode())

    def deliver_copy(self, frame: bytes, event_id: str | None, chat_id: str | None) -> None:
        """A frame from the user's subject: a push, or the end of an answer another socket lost."""
        if chat_id is not None and (not self.resumed or chat_id in self.inflight):
            return
        self.deliver(frame, event_id)

    async def _resume(self, after: int, pending: list[str]) -> None:
        """Replay every kept frame after ``after``, and the kept answers to ``pending`` chats
        (whose ends may carry lower ids: answers finish out of order), then live frames."""
        self.resumed = True
        self._held = []
        names, js = self.gateway.settings.subjects, self.gateway.js
        try:
            oldest = await delivery.oldest_event_id(js, names)
            if after + 1 < oldest:
                self.send_error("resume_gap", {"oldest_event_id": oldest})
            replayed = [
                (msg.data or b"", str(msg.seq))
                async for msg in delivery.replay(js, names, self.identity.user_id, after)
            ]
        finally:
            held, self._held = self._held, None
        for frame, event_id in [*replayed, *held]:
            self.deliver(frame, event_id)
        log.info(
            "resumed after event %d: %d replayed",
            after,
            len(replayed),
            extra={**self.log_extra, "marker": logs.RECONNECT},
        )

    async def handle_text(self, text: str) -> None:
        self.messages += 1
        retry_after = self.bucket.take()
        if retry_after:
            metrics.rate_limited.labels("socket").inc()
            self.send_error("rate_limited", {"retry_after": round(retry_after, 2)})
            return
        try:
            frame = client_decoder.decode(text)
        except msgspec.DecodeError as exc:
            metrics.count_in("invalid")
            self._reject(text, exc)
            return
        except RecursionError:
            metrics.count_in("invalid")
            self.send_error("invalid_message", "JSON nested too deeply")
            return
        metrics.count_in(type(frame).__struct_config__.tag)
        if type(frame) is Chat:
            await self._chat(frame)
        elif type(frame) is Ping:
            self.send(Pong(timestamp=now_iso()))
        elif type(frame) is Auth:
            self._refresh(frame.token)
        elif type(frame) is Resume:
            await self._resume(frame.last_event_id, frame.pending)

    def _reject(self, text: str, exc: msgspec.DecodeError) -> None:
        """Say precisely what was wrong with a frame that did not decode."""
        if not isinstance(exc, msgspec.ValidationError):
            self.send_error("invalid_json")
            return
        try:
            kind = _envelope_decoder.decode(text).type
        except (msgspec.DecodeError, RecursionError):
            kind = None
        if kind is not None and kind not in KNOWN_TYPES:
            self.send_error("unknown_type", {"type": kind[:64]})
        else:
            self.send_error("invalid_message", str(exc))

    async def _chat(self, chat: Chat) -> None:
        if chat.user_id is not None and not self.identity.owns(chat.user_id):
            self.send_error("user_mismatch", reply_to=chat.message_id)
            return
        retry_after = await self.gateway.quota.take(self.quota_key)
        if retry_after:
            metrics.rate_limited.labels("user").inc()
            self.send_error("rate_limited", {"retry_after": round(retry_after, 2)}, chat.message_id)
            return
        request = ChatRequest(
            request_id=uuid.uuid4().hex,
            session_id=self.id,
            user_id=self.identity.user_id,
            demo=self.identity.demo,
            message=chat.message,
            context=chat.context,
            received_at=time.time(),
            message_id=chat.message_id,
        )
        traceparent = tracing.new_traceparent()
        trace = {**self.log_extra, "trace_id": tracing.trace_id_of(traceparent), "marker": logs.INCOMING}
        log.debug("chat accepted", extra=trace)
        if not self.identity.demo:
            event = _user_message(request, traceparent)
            self.gateway.journal.record(event, {tracing.TRACEPARENT: tracing.child_traceparent(traceparent)})
        encoded = chat_request_encoder.encode(request)
        await self.gateway.relay.send(self, request.request_id, encoded, chat.message_id, traceparent)

    def _refresh(self, token: str) -> None:
        """Swap in a fresh token for the same user without reconnecting."""
        try:
            identity = verify_token(token, self.gateway.settings)
        except AuthError as exc:
            self.send_error(exc.code)
            return
        if identity.user_id != self.identity.user_id:
            self.send_error("user_mismatch")
            return
        self.identity = identity
        self.watch_expiry()
        self.send(self.connected("Token refreshed"))
        log.info("token refreshed", extra={**self.log_extra, "marker": logs.OK})

    def watch_expiry(self) -> None:
        """Warn ``token_warning_seconds`` before the token's ``exp``; close with 4401 at it."""
        self.stop_watching()
        expires_at = self.identity.expires_at
        if expires_at is None:
            return
        loop = asyncio.get_running_loop()
        settings = self.gateway.settings
        in_seconds = expires_at - time.time()
        warn_in = max(0.0, in_seconds - settings.token_warning_seconds)
        self._expiry = (
            loop.call_later(warn_in, self.send_error, "token_expiring", {"expires_at": expires_at}),
            loop.call_later(in_seconds + settings.jwt_leeway_seconds, self._expired),
        )

    def stop_watching(self) -> None:
        for handle in self._expiry:
            handle.cancel()
        self._expiry = ()

    def _expired(self) -> None:
        log.info("token expired on an open socket", extra={**self.log_extra, "marker": logs.CONNECTION})
        self.send_error("token_expired")
        self.outbox.close_soon(UNAUTHORIZED)


def _user_message(request: ChatRequest, traceparent: str) -> UserMessage:
    return UserMessage(
        event_id=uuid.uuid4().hex,
        session_id=request.session_id,
        user_id=request.user_id,
        content=request.message,
        created_at=request.received_at,
        client_message_id=request.message_id,
        region=request.context.region,
        current_page=request.context.current_page,
        trace_id=tracing.trace_id_of(traceparent),
    )


async def serve(gateway: Gateway, websocket: WebSocket, path_user_id: str | None) -> None:
    """The whole life of one socket."""
    await websocket.accept()
    outbox = Outbox(websocket, gateway.settings.send_queue_bytes)
    if gateway.draining:
        await _refuse(outbox, None, SERVICE_RESTART)
        return
    client_ip = websocket.client.host if websocket.client else "unknown"
    if not gateway.attempts.allow(client_ip):
        metrics.rate_limited.labels("ip").inc()
        await _refuse(outbox, "connection_limited", RATE_LIMITED)
        return
    try:
        identity = authenticate(websocket.query_params.get("token"), path_user_id, gateway.settings)
    except AuthError as exc:
        await _refuse(outbox, exc.code, FORBIDDEN if exc.code == "user_mismatch" else UNAUTHORIZED)
        return
    if not gateway.user_sockets.acquire(identity.user_id):
        metrics.rate_limited.labels("user_sockets").inc()
        await _refuse(outbox, "connection_limited", RATE_LIMITED)
        return
    try:
        await _run(Session(gateway, outbox, identity, client_ip), websocket)
    finally:
        gateway.user_sockets.release(identity.user_id)


async def _run(session: Session, websocket: WebSocket) -> None:
    gateway, identity = session.gateway, session.identity
    gateway.add(session)
    mode = "demo" if identity.demo else "live"
    log.info("socket opened (%s)", mode, extra={**session.log_extra, "marker": logs.CONNECTION})
    session.send(session.connected("Connected to PAM"))
    session.watch_expiry()
    metrics.connections_opened.labels(mode).inc()
    metrics.connections_open.labels(mode).inc()
    client_code: int | None = None
    try:
        client_code = await _read_frames(session, websocket)
    finally:
        session.stop_watching()
        gateway.remove(session)
        session.outbox.discard()
        metrics.connections_open.labels(mode).dec()
        _log_closed(session, session.outbox.close_code or client_code, websocket.query_params)


def _log_closed(session: Session, code: int | None, query: Mapping[str, str]) -> None:
    """The seed's per-connection metrics, in the session's closing line."""
    metrics.connections_closed.labels(str(code or 1006)).inc()
    log.info(
        "socket closed (code %s) after %.1f s: %d messages, %d errors, %s reconnect attempts",
        code or 1006,
        time.monotonic() - session.opened,
        session.messages,
        session.errors,
        query.get("reconnect_attempts", "0")[:6],
        extra={**session.log_extra, "marker": logs.CONNECTION},
    )


async def _read_frames(session: Session, websocket: WebSocket) -> int | None:
    """Handle frames until the client goes; returns the close code it sent."""
    limit = session.gateway.settings.max_message_bytes
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return message.get("code")
        text = message.get("text")
        if text is None:
            session.send_error("binary_unsupported")
            continue
        if len(text) > limit // 4 and len(text.encode()) > limit:
            session.send_error("message_too_large", {"limit_bytes": limit})
            continue
        try:
            await session.handle_text(text)
        except Exception:  # a bug must cost one frame, never the socket
            log.exception("frame handling failed", extra={**session.log_extra, "marker": logs.ERROR})
            session.send_error("internal_error")


async def _refuse(outbox: Outbox, code: str | None, close_code: int) -> None:
    log.info("socket refused: %s", code or close_code, extra={"marker": logs.ERROR})
    if code is not None:
        outbox.put(encoder.encode(error_frame(code)).decode())
    await outbox.close(close_code)
