"""One signed-in socket: what each client frame does, and the token's life on it."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid

import msgspec
from pam_shared import logs
from pam_shared.auth import AuthError, Identity, verify_token
from pam_shared.errors import ErrorCode, error_frame
from pam_shared.protocol import (
    CLIENT_TYPES,
    UNAUTHORIZED,
    Auth,
    Cancel,
    Cancelled,
    Chat,
    Connection,
    Edit,
    Ping,
    Pong,
    Regenerate,
    Resume,
    encoder,
    now_iso,
)
from pam_shared.settings import GatewaySettings

from pam_gateway import metrics
from pam_gateway.chats import Branch, ChatPath
from pam_gateway.dialect import Dialect
from pam_gateway.inbox import Inbox
from pam_gateway.outbox import Outbox
from pam_gateway.ratelimit import TokenBucket

log = logging.getLogger("pam.gateway.session")


class _Envelope(msgspec.Struct):
    type: str


_envelope_decoder = msgspec.json.Decoder(_Envelope)


class Session:
    # Slots: thousands of idle sessions add up.
    __slots__ = (
        "identity",
        "client_ip",
        "id",
        "outbox",
        "dialect",
        "inbox",
        "path",
        "settings",
        "bucket",
        "_expiry",
        "opened",
        "messages",
        "errors",
    )

    def __init__(
        self,
        identity: Identity,
        client_ip: str,
        outbox: Outbox,
        dialect: Dialect,
        inbox: Inbox,
        path: ChatPath,
        settings: GatewaySettings,
    ) -> None:
        self.identity = identity
        self.client_ip = client_ip
        self.id = secrets.token_hex(8)
        self.outbox = outbox
        self.dialect = dialect
        self.inbox = inbox
        self.path = path
        self.settings = settings
        self.bucket = TokenBucket(settings.rate_burst, settings.rate_per_second)
        self._expiry: tuple[asyncio.TimerHandle, ...] = ()
        self.opened = time.monotonic()
        self.messages = 0
        self.errors = 0

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
        self.dialect.write(self.outbox.put, encoder.encode(frame))

    def send_error(self, code: ErrorCode, details: object = None, reply_to: str | None = None) -> None:
        self.errors += 1
        metrics.errors.labels(code).inc()
        self.send(error_frame(code, details, reply_to))

    async def handle_text(self, text: str) -> None:
        self.messages += 1
        retry_after = self.bucket.take()
        if retry_after:
            metrics.rate_limited.labels("socket").inc()
            self.send_error("rate_limited", {"retry_after": round(retry_after, 2)})
            return
        try:
            frame = self.dialect.read(text)
        except msgspec.DecodeError as exc:
            metrics.count_in("invalid")
            self._reject(text, exc)
            return
        except RecursionError:
            metrics.count_in("invalid")
            self.send_error("invalid_message", "JSON nested too deeply")
            return
        if frame is None:  # the dialect took it (a pong, say): nothing for the session to do
            return
        metrics.count_in(str(type(frame).__struct_config__.tag))
        if type(frame) is Chat:
            await self._chat(frame)
        elif type(frame) is Ping:
            self.send(Pong(timestamp=now_iso()))
        elif type(frame) is Auth:
            await self._refresh(frame.token)
        elif type(frame) is Resume:
            await self._resume(frame)
        elif type(frame) is Cancel:
            await self._cancel(frame.message_id)
        elif type(frame) is Regenerate or type(frame) is Edit:
            await self._branch(frame)

    def _reject(self, text: str, exc: msgspec.DecodeError) -> None:
        """Say precisely what was wrong with a frame that did not decode."""
        if not isinstance(exc, msgspec.ValidationError):
            self.send_error("invalid_json")
            return
        try:
            kind = _envelope_decoder.decode(text).type
        except (msgspec.DecodeError, RecursionError):
            kind = None
        if kind is not None and kind not in CLIENT_TYPES:
            self.send_error("unknown_type", {"type": kind[:64]})
        else:
            self.send_error("invalid_message", str(exc))

    async def _branch(self, frame: Regenerate | Edit) -> None:
        """A regenerate or an edit: a chat that answers an earlier turn again, on a new branch."""
        if isinstance(frame, Regenerate):
            text, branch = "", Branch(regenerate=frame.answer_id)
        else:
            text, branch = frame.message, Branch(edit_of=frame.user_message_id)
        chat = Chat(message=text, context=frame.context, message_id=frame.message_id, on_busy=frame.on_busy)
        await self._chat(chat, branch)

    async def _chat(self, chat: Chat, branch: Branch | None = None) -> None:
        chat_id = uuid.uuid4().hex
        self.inbox.asked(chat_id)  # the client waits from now on: pushes wait behind its answer
        try:
            if not await self._admitted(chat):
                self.inbox.answered(chat_id)
                return
            if self.dialect.resends_over_rest:  # so the re-send finds this answer
                await self.path.resent(self.identity, self.dialect.client_message_id(chat), chat.message, chat_id)
            await self.path.submit(self.identity, self.id, chat, self.inbox, chat_id, branch)
        except BaseException:
            self.inbox.answered(chat_id)
            raise

    async def _admitted(self, chat: Chat) -> bool:
        """Whether the chat is this user's and within their limits; if not, its refusal is sent."""
        if chat.user_id is not None and not self.identity.owns(chat.user_id):
            self.send_error("user_mismatch", reply_to=chat.message_id)
            return False
        refused = await self.path.admit(self.identity, self.client_ip)
        if refused is not None:
            self.send_error(refused.code, refused.details, chat.message_id)
            return False
        return True

    async def _cancel(self, message_id: str) -> None:
        """Stop one of this user's answers, from whichever socket or gateway it runs."""
        status = await self.path.cancel(self.identity, message_id)
        if status is None:
            self.send_error("orchestrator_unavailable", {"message_id": message_id})
        elif status == "not_found":
            self.send_error("nothing_to_cancel", {"message_id": message_id})
        else:
            self.send(Cancelled(message_id=message_id, status=status))

    async def _resume(self, frame: Resume) -> None:
        replayed = await self.inbox.resume(frame.last_event_id, frame.pending, self._resume_gap)
        extra = {**self.log_extra, "marker": logs.RECONNECT}
        log.info("resumed after event %d: %d replayed", frame.last_event_id, replayed, extra=extra)

    def _resume_gap(self, oldest: int) -> None:
        self.send_error("resume_gap", {"oldest_event_id": oldest})

    async def _refresh(self, token: str) -> None:
        """Swap in a fresh token for the same user without reconnecting."""
        try:
            identity = await verify_token(token, self.settings.auth)
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
        in_seconds = expires_at - time.time()
        warn_in = max(0.0, in_seconds - self.settings.token_warning_seconds)
        self._expiry = (
            loop.call_later(warn_in, self.send_error, "token_expiring", {"expires_at": expires_at}),
            loop.call_later(in_seconds + self.settings.auth.jwt_leeway_seconds, self._expired),
        )

    def stop_watching(self) -> None:
        for handle in self._expiry:
            handle.cancel()
        self._expiry = ()

    def _expired(self) -> None:
        log.info("token expired on an open socket", extra={**self.log_extra, "marker": logs.CONNECTION})
        self.send_error("token_expired")
        self.outbox.close_soon(UNAUTHORIZED)
