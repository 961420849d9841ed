"""Timers and alarms over REST, and the shipped client's Dismiss button.

``GET /api/v1/pam/timers`` lists the ones still due, ``POST`` sets one (``TimerRequest``),
``DELETE /api/v1/pam/timers/{timer_id}`` cancels one; ``POST /api/v1/pam/internal/dismiss-timer``
takes ``timer_id`` (or ``id``) from a JSON body or the query string.  Every route needs the
user's token (``Authorization: Bearer``); the timers live in JetStream (``pam_shared.timers``).
"""

from __future__ import annotations

import json

import msgspec
from pam_shared.auth import AuthError, Identity, verify_token
from pam_shared.errors import ERRORS, ErrorCode, error_body
from pam_shared.protocol import encoder
from pam_shared.settings import GatewaySettings
from pam_shared.timers import TimerError, TimerStore, TimersUnavailable, from_request, timer_request_decoder
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class TimerRoutes:
    def __init__(self, settings: GatewaySettings, store: TimerStore) -> None:
        self.settings = settings
        self.store = store

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/pam/timers", self.list, methods=["GET"]),
            Route("/api/v1/pam/timers", self.set, methods=["POST"]),
            Route("/api/v1/pam/timers/{timer_id}", self.cancel, methods=["DELETE"]),
            Route("/api/v1/pam/internal/dismiss-timer", self.dismiss, methods=["POST"]),
        ]

    async def _identity(self, request: Request) -> Identity:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return await verify_token(token.strip() if scheme.lower() == "bearer" else None, self.settings.auth)

    async def list(self, request: Request) -> Response:
        try:
            identity = await self._identity(request)
        except AuthError as exc:
            return _refusal(exc.code)
        pending = await self.store.pending(identity.user_id)
        return Response(encoder.encode({"timers": pending}), media_type="application/json")

    async def set(self, request: Request) -> Response:
        try:
            identity = await self._identity(request)
            timer = from_request(identity.user_id, timer_request_decoder.decode(await request.body()))
        except AuthError as exc:
            return _refusal(exc.code)
        except (msgspec.DecodeError, TimerError) as exc:
            return _refusal("timer_invalid", str(exc))
        try:
            await self.store.set(timer)
        except TimersUnavailable as exc:
            return _refusal("timers_unavailable", str(exc))
        return Response(encoder.encode({"timer": timer}), status_code=201, media_type="application/json")

    async def cancel(self, request: Request) -> Response:
        try:
            identity = await self._identity(request)
        except AuthError as exc:
            return _refusal(exc.code)
        timer_id = request.path_params["timer_id"]
        if not await self.store.cancel(identity.user_id, timer_id):
            return _refusal("timer_not_found")
        return JSONResponse({"success": True, "timer_id": timer_id})

    async def dismiss(self, request: Request) -> Response:
        try:
            identity = await self._identity(request)
        except AuthError as exc:
            return _refusal(exc.code)
        timer_id = await _timer_id(request)
        if timer_id is None:
            return _refusal("timer_invalid", "send timer_id in the JSON body or the query string")
        if not await self.store.dismiss(identity.user_id, timer_id):
            return _refusal("timer_not_found")
        return JSONResponse({"success": True, "timer_id": timer_id})


async def _timer_id(request: Request) -> str | None:
    """The client's ``timer_id`` (or ``id``): query string first, then a JSON object body."""
    found = request.query_params.get("timer_id") or request.query_params.get("id")
    if found:
        return found
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError:
        return None
    value = body.get("timer_id") or body.get("id") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def _refusal(code: ErrorCode, detail: str | None = None) -> Response:
    """The error body of ``code`` (its HTTP status from the one error table)."""
    return JSONResponse(error_body(code, detail), status_code=ERRORS[code].status)
