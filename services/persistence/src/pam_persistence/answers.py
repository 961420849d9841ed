"""The request-reply endpoints (``nats.micro``): decode the request, read, reply.

Errors go back the ``nats.micro`` way, as ``Nats-Service-Error-Code`` headers: 400 for
a request that does not decode or a cursor this service did not make, 503 while the
database cannot be reached.  The gateway turns them into HTTP statuses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from nats.errors import Error as NatsError
from nats.micro.request import Request
from pam_shared import logs
from pam_shared.internal import history_request_decoder
from pam_shared.read_api import (
    analytics_request_decoder,
    conversations_request_decoder,
    export_request_decoder,
    messages_request_decoder,
    query_encoder,
)

from pam_persistence import export, reads
from pam_persistence.conversations import Activity
from pam_persistence.db import describe

log = logging.getLogger("pam.persistence.answers")

UNAVAILABLE = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, NatsError)
"""The database, or NATS (a mirror, a purge), cannot do it now."""


class Forbidden(Exception):
    """The request may not be served to whoever sent it (403)."""


class Answers:
    def __init__(self, pool: asyncpg.Pool, activity: Activity, max_payload: int) -> None:
        self.pool = pool
        self.activity = activity
        self.export_page_bytes = min(export.PAGE_BYTES, max_payload // 4)

    async def history(self, request: Request) -> None:
        await answer(request, history_request_decoder, lambda q: reads.history(self.pool, q, self.activity))

    async def conversations(self, request: Request) -> None:
        await answer(request, conversations_request_decoder, lambda q: reads.conversations(self.pool, q))

    async def messages(self, request: Request) -> None:
        await answer(request, messages_request_decoder, lambda q: reads.messages(self.pool, q))

    async def analytics(self, request: Request) -> None:
        await answer(request, analytics_request_decoder, lambda q: reads.analytics(self.pool, q))

    async def export(self, request: Request) -> None:
        await answer(request, export_request_decoder, lambda q: export.page(self.pool, q, self.export_page_bytes))


async def answer(request: Request, decoder: msgspec.json.Decoder[Any], read: Callable[[Any], Awaitable[Any]]) -> None:
    """Decode the request, ``read`` its reply and send it; errors as ``nats.micro`` error codes."""
    try:
        query = decoder.decode(request.data)
    except msgspec.DecodeError as exc:
        await request.respond_error("400", f"bad request: {exc}")
        return
    try:
        reply = await read(query)
    except reads.BadCursor:
        await request.respond_error("400", "bad cursor")
        return
    except Forbidden as exc:
        await request.respond_error("403", f"not allowed: {exc}")
        return
    except UNAVAILABLE as exc:
        log.warning("%s unanswered: %s", request.subject, describe(exc), extra={"marker": logs.ERROR})
        await request.respond_error("503", "unavailable")
        return
    await request.respond(query_encoder.encode(reply))
