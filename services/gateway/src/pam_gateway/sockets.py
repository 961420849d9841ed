"""Admitting a socket and living with it: refusals, the read loop, the closing line."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from pam_shared import logs
from pam_shared.auth import AuthError, Identity, authenticate
from pam_shared.errors import ErrorCode, error_frame
from pam_shared.protocol import ERASED, FORBIDDEN, RATE_LIMITED, SERVICE_RESTART, UNAUTHORIZED, encoder
from pam_shared.settings import GatewaySettings
from starlette.websockets import WebSocket

from pam_gateway import metrics, origins
from pam_gateway.consent import PrivacyBook
from pam_gateway.dialect import SEED, Dialect
from pam_gateway.outbox import Outbox
from pam_gateway.ratelimit import AttemptsPerMinute, SocketsPerUser
from pam_gateway.registry import Registry
from pam_gateway.session import Session

log = logging.getLogger("pam.gateway.sockets")

OpenSession = Callable[[Identity, str, Outbox, Dialect], Session]
"""Builds the session of an admitted socket from its identity, client IP, outbox and dialect."""


class Refusal(Exception):
    """A socket turned away: the error code its client is told (if any) and the close code."""

    def __init__(self, code: ErrorCode | None, close_code: int, at_handshake: bool = False) -> None:
        super().__init__(code or str(close_code))
        self.code, self.close_code, self.at_handshake = code, close_code, at_handshake


class Sockets:
    def __init__(
        self, settings: GatewaySettings, registry: Registry, book: PrivacyBook, open_session: OpenSession
    ) -> None:
        self.settings = settings
        self.book = book
        self.registry = registry
        self.open_session = open_session
        self.attempts = AttemptsPerMinute(settings.ip_connects_per_minute)
        self.user_sockets = SocketsPerUser(settings.max_sockets_per_user)
        self.draining = False

    async def serve(self, websocket: WebSocket, path_user_id: str | None, dialect: Dialect = SEED) -> None:
        """The whole life of one socket."""
        client_ip = websocket.client.host if websocket.client else "unknown"
        try:
            identity = await self._admit(websocket, client_ip, path_user_id)
        except Refusal as refusal:
            await _refuse(websocket, refusal, dialect, self.settings.send_queue_bytes)
            return
        try:
            await websocket.accept()
            outbox = Outbox(websocket, self.settings.send_queue_bytes)
            await self._live(self.open_session(identity, client_ip, outbox, dialect), websocket)
        finally:
            self.user_sockets.release(identity.user_id)

    async def _admit(self, websocket: WebSocket, client_ip: str, path_user_id: str | None) -> Identity:
        """Who is connecting, if every check lets them in; else ``Refusal``."""
        if self.draining:
            raise Refusal(None, SERVICE_RESTART)
        headers = websocket.headers
        if not origins.allowed(headers.get("origin"), self.settings.allowed_origins, headers.get("host")):
            raise Refusal("origin_forbidden", FORBIDDEN, at_handshake=True)
        if not self.attempts.allow(client_ip):
            metrics.rate_limited.labels("ip").inc()
            raise Refusal("connection_limited", RATE_LIMITED)
        try:
            identity = await authenticate(websocket.query_params.get("token"), path_user_id, self.settings.auth)
        except AuthError as exc:
            raise Refusal(exc.code, FORBIDDEN if exc.code == "user_mismatch" else UNAUTHORIZED) from None
        if self.book.erasing(identity.user_id):
            raise Refusal("erasing", ERASED)
        if not self.user_sockets.acquire(identity.user_id):
            metrics.rate_limited.labels("user_sockets").inc()
            raise Refusal("connection_limited", RATE_LIMITED)
        return identity

    async def _live(self, session: Session, websocket: WebSocket) -> None:
        self.registry.add(session)
        mode = "demo" if session.identity.demo else "live"
        log.info("socket opened (%s)", mode, extra={**session.log_extra, "marker": logs.CONNECTION})
        session.send(session.connected("Connected to PAM"))
        session.watch_expiry()
        metrics.connections_opened.labels(mode).inc()
        metrics.connections_open.labels(mode).inc()
        client_code: int | None = None
        try:
            client_code = await self._read_frames(session, websocket)
        finally:
            session.stop_watching()
            self.registry.remove(session)
            session.outbox.discard()
            metrics.connections_open.labels(mode).dec()
            _log_closed(session, session.outbox.close_code or client_code, websocket.query_params)

    async def _read_frames(self, session: Session, websocket: WebSocket) -> int | None:
        """Handle frames until the client goes; returns the close code it sent."""
        limit = self.settings.max_message_bytes
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                code: int | None = message.get("code")
                return code
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


async def _refuse(websocket: WebSocket, refusal: Refusal, dialect: Dialect, queue_bytes: int) -> None:
    """Turn a socket away: at the handshake (HTTP 403) for a dialect that wants it, else with
    the seed's error frame and close code."""
    log.info("socket refused: %s", refusal, extra={"marker": logs.ERROR})
    metrics.refused.labels(refusal.code or str(refusal.close_code)).inc()
    if dialect.refuse_at_handshake or refusal.at_handshake:
        await websocket.close(refusal.close_code)
        return
    await websocket.accept()
    outbox = Outbox(websocket, queue_bytes)
    if refusal.code is not None:
        dialect.write(outbox.put, encoder.encode(error_frame(refusal.code)))
    await outbox.close(refusal.close_code)
