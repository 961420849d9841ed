"""Chat over HTTP, for the shipped client's fallback: ``POST /api/v1/pam/chat`` (and ``pam-simple``).

The same path as a socket's chat (limits, journal, orchestrators, kept frames); the answer
is collected to its end and returned as one JSON body.  A chat the client re-sends (it gave
up on its socket after 30 s, or its first REST attempt) gets the answer already under way,
followed through the user's subject and the kept frames, never a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from pam_shared import __version__
from pam_shared.auth import AuthError, Identity, authenticate
from pam_shared.errors import ERRORS, ErrorCode, error_body
from pam_shared.protocol import (
    Cancelled,
    Chat,
    ChatResponse,
    Error,
    UiAction,
    UiActions,
    encoder,
    now_iso,
    server_decoder,
)
from pam_shared.settings import GatewaySettings
from pam_shared.subjects import CHAT_ID_HEADER, EVENT_ID_HEADER
from pam_shared.wheels import RestChatRequest, RestChatResponse, rest_chat_decoder
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pam_gateway.chats import ChatPath
from pam_gateway.inbox import KeptFrames

ANSWER_WAIT_SECONDS = 90.0
"""Longest a REST chat waits for its answer (the answer deadline, with room for one retry)."""
UNAVAILABLE: frozenset[ErrorCode] = frozenset({"orchestrator_unavailable"})
"""Answers that mean PAM cannot answer at all: 503, so the client knows it is offline."""


class Collected:
    """One answer's frames as they arrive (a relay recipient, or a follower of the user subject)."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.actions: list[UiAction] = []
        self.end: ChatResponse | Error | None = None
        self.done = asyncio.Event()
        self._seen: set[str] = set()

    def asked(self, chat_id: str) -> None:
        pass

    def answered(self, chat_id: str) -> None:
        pass

    def deliver(self, frame: bytes, event_id: str | None) -> None:
        if event_id is not None:
            if event_id in self._seen:
                return
            self._seen.add(event_id)
        decoded = server_decoder.decode(frame)
        if isinstance(decoded, UiActions):
            self.actions.extend(decoded.actions)
        elif isinstance(decoded, ChatResponse | Error) and self.end is None:
            self.end = decoded
            self.done.set()


class RestChat:
    def __init__(self, nc: Client, settings: GatewaySettings, path: ChatPath, kept: KeptFrames) -> None:
        self.nc = nc
        self.settings = settings
        self.path = path
        self.kept = kept

    async def chat(self, request: Request) -> Response:
        started = time.monotonic()
        try:
            identity = await self._identity(request)
            body = rest_chat_decoder.decode(await request.body())
        except AuthError as exc:
            return _refusal(exc.code)
        except msgspec.DecodeError as exc:
            return _refusal("invalid_message", str(exc))
        if body.user_id is not None and not identity.owns(body.user_id):
            return _refusal("user_mismatch")
        refused = await self.path.admit(identity, request.client.host if request.client else "unknown")
        if refused is not None:
            retry = {"Retry-After": str(math.ceil(refused.retry_after))}
            return _refusal(refused.code, details=refused.details, headers=retry)
        collected, chat_id = await self._answer(identity, body)
        return _response(collected, body.session_id or chat_id, chat_id, time.monotonic() - started)

    async def cancel(self, request: Request) -> Response:
        """``POST /api/v1/chats/{message_id}/cancel``: stop one of the user's answers, like a ``cancel`` frame."""
        message_id = request.path_params["message_id"]
        try:
            identity = await self._identity(request)
        except AuthError as exc:
            return _refusal(exc.code)
        status = await self.path.cancel(identity, message_id)
        if status is None:
            return _refusal("orchestrator_unavailable")
        if status == "not_found":
            return _refusal("nothing_to_cancel", details={"message_id": message_id})
        return Response(encoder.encode(Cancelled(message_id=message_id, status=status)), media_type="application/json")

    async def _identity(self, request: Request) -> Identity:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return await authenticate(token.strip() if scheme.lower() == "bearer" else None, None, self.settings.auth)

    async def _answer(self, identity: Identity, body: RestChatRequest) -> tuple[Collected, str]:
        """Start the chat, or follow the one already answering it; returns when it ends (or
        after ``ANSWER_WAIT_SECONDS``)."""
        collected = Collected(identity.user_id)
        chat_id = uuid.uuid4().hex
        earlier = await self.path.resent(identity, body.message_id, body.message, chat_id)
        if earlier is not None:
            await self._follow(identity.user_id, earlier, collected)
            return collected, earlier
        chat = Chat(message=body.message, user_id=body.user_id, context=body.context, message_id=body.message_id)
        await self.path.submit(identity, f"rest-{chat_id[:16]}", chat, collected, chat_id)
        await _ended(collected)
        return collected, chat_id

    async def _follow(self, user_id: str, chat_id: str, collected: Collected) -> None:
        """Collect the frames of an answer someone else asked for, past and still to come."""

        async def copy(msg: Msg) -> None:
            headers = msg.headers or {}
            if headers.get(CHAT_ID_HEADER) == chat_id:
                collected.deliver(msg.data, headers.get(EVENT_ID_HEADER))

        sub = await self.nc.subscribe(self.path.relay.names.user(user_id), cb=copy)
        try:
            for frame, event_id in await self.kept.answer(user_id, chat_id):
                collected.deliver(frame, event_id)
            await _ended(collected)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


async def _ended(collected: Collected) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(collected.done.wait(), ANSWER_WAIT_SECONDS)


def _response(collected: Collected, session_id: str, chat_id: str, took: float) -> Response:
    end = collected.end
    if end is None:
        return _refusal("timeout")
    if isinstance(end, Error) and end.code in UNAVAILABLE:
        return _refusal("orchestrator_unavailable")
    text = end.message
    body = RestChatResponse(
        response=text,
        message=text,
        content=text,
        ui_actions=collected.actions,
        session_id=session_id,
        message_id=end.message_id if isinstance(end, ChatResponse) else chat_id,
        timestamp=end.timestamp if isinstance(end, ChatResponse) else now_iso(),
        intent=end.intent if isinstance(end, ChatResponse) else None,
        error=isinstance(end, Error),
        error_code=end.code if isinstance(end, Error) else None,
        truncated=end.truncated if isinstance(end, ChatResponse) else None,
        processing_time_ms=int(took * 1000),
    )
    return Response(encoder.encode(body), media_type="application/json")


def _refusal(
    code: ErrorCode, detail: str | None = None, details: object = None, headers: dict[str, str] | None = None
) -> Response:
    """A chat refused before it reached PAM: the shipped client's error shape, with our code and its status."""
    return JSONResponse(error_body(code, detail, details), status_code=ERRORS[code].status, headers=headers)


async def health(request: Request) -> Response:
    """``GET /api/v1/pam/health``: always 200 (the shipped client reads the body); liveness only."""
    return JSONResponse({"status": "healthy", "service": "PAM", "version": __version__, "timestamp": now_iso()})
