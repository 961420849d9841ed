"""The read API: a user's conversations, messages and token use, and an activity summary for admins.

Every request carries ``Authorization: Bearer <jwt>``.  The data comes from persistence
over NATS request-reply (the gateway never opens a database pool).  A user sees only
their own data: someone else's conversation is a 404, exactly like one that does not
exist.  Errors are JSON: ``{"error": code, "error_code": code, "message": words for people}``
(``pam_shared.errors``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.micro.request import ERROR_CODE_HEADER
from pam_shared import bus
from pam_shared.auth import AuthError, Identity, verify_token
from pam_shared.budget import Budgets, usage_encoder
from pam_shared.errors import ERRORS, ErrorCode, error_body
from pam_shared.read_api import (
    AnalyticsRequest,
    ConversationsRequest,
    MessagesRequest,
    analytics_reply_decoder,
    conversations_reply_decoder,
    messages_reply_decoder,
    query_encoder,
)
from pam_shared.settings import GatewaySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

REQUEST_TIMEOUT_SECONDS = 5.0
ADMIN_ROLES = frozenset({"admin", "service_role"})

Handler = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    def __init__(self, code: ErrorCode, detail: str | None = None) -> None:
        super().__init__(code)
        self.code, self.detail = code, detail


def routes(api: ReadApi) -> list[Route]:
    return [
        Route("/api/v1/usage", guarded(api.usage)),
        Route("/api/v1/conversations", guarded(api.conversations)),
        Route("/api/v1/conversations/{conversation_id}/messages", guarded(api.messages)),
        Route("/api/v1/analytics/summary", guarded(api.analytics)),
    ]


class ReadApi:
    def __init__(self, nc: Client, settings: GatewaySettings, budgets: Budgets) -> None:
        self.nc = nc
        self.settings = settings
        self.names = settings.subjects
        self.budgets = budgets

    async def usage(self, request: Request) -> Response:
        """The user's tokens spent this UTC day and month, their limits (null: none) and resets."""
        identity = await self.identity(request)
        try:
            used = await self.budgets.usage(identity.user_id)
        except Exception:  # NATS trouble, a timeout
            raise ApiError("usage_unavailable") from None
        return Response(usage_encoder.encode(used), media_type="application/json")

    async def conversations(self, request: Request) -> Response:
        """The user's conversations, most recently active first; ``?limit=&cursor=``."""
        identity = await self.identity(request)
        query = ConversationsRequest(identity.user_id, _int(request, "limit", 20, 1, 100), _cursor(request))
        reply = await self.ask(self.names.conversation_list, query, conversations_reply_decoder)
        return _json(reply)

    async def messages(self, request: Request) -> Response:
        """One of the user's conversations, oldest message first; ``?limit=&cursor=``."""
        identity = await self.identity(request)
        conversation_id = request.path_params["conversation_id"]
        limit = _int(request, "limit", 100, 1, 200)
        query = MessagesRequest(identity.user_id, conversation_id, limit, _cursor(request))
        reply = await self.ask(self.names.conversation_messages, query, messages_reply_decoder)
        if not reply.found:
            raise ApiError("not_found")
        body = {"conversation_id": conversation_id, "messages": reply.messages, "next_cursor": reply.next_cursor}
        return _json(body)

    async def analytics(self, request: Request) -> Response:
        """Messages per day, intent and error counts, latency percentiles; ``?days=`` (admins only)."""
        if (await self.identity(request)).role not in ADMIN_ROLES:
            raise ApiError("forbidden")
        query = AnalyticsRequest(_int(request, "days", 30, 1, 366))
        return _json(await self.ask(self.names.analytics_summary, query, analytics_reply_decoder))

    async def identity(self, request: Request) -> Identity:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            return await verify_token(token.strip() if scheme.lower() == "bearer" else None, self.settings.auth)
        except AuthError as exc:
            raise ApiError(exc.code) from None

    async def ask(self, subject: str, query: msgspec.Struct, decoder: msgspec.json.Decoder[Any]) -> Any:
        """Persistence's answer to ``query``; 503 when no instance answers in time."""
        try:
            reply = await bus.request(self.nc, subject, query_encoder.encode(query), REQUEST_TIMEOUT_SECONDS)
        except NatsError:  # no responders, timeout, reconnecting
            raise ApiError("persistence_unavailable") from None
        status = (reply.headers or {}).get(ERROR_CODE_HEADER)
        if status == "400":
            raise ApiError("bad_request", "cursor")
        if status:
            raise ApiError("persistence_unavailable")
        return decoder.decode(reply.data)


def guarded(handler: Handler) -> Handler:
    """Turn an ``ApiError`` into its JSON response."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            status = ERRORS[exc.code].status
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            return JSONResponse(error_body(exc.code, exc.detail), status_code=status, headers=headers)

    return endpoint


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError("bad_request", name) from None
    if not low <= value <= high:
        raise ApiError("bad_request", name)
    return value


def _cursor(request: Request) -> str | None:
    return request.query_params.get("cursor") or None


def _json(body: object) -> Response:
    return Response(query_encoder.encode(body), media_type="application/json")
