"""``GET /api/v1/users/me/export``: everything PAM holds about the user, as one JSON download.

The document is written as persistence's pages come (``ExportRequest`` over NATS): the next
page is asked for only once the last one is written to the client, so a long history never
sits in the gateway and a slow reader slows its export down instead of piling it up here.
One export per user at a time on a gateway; another is refused with 409 ``export_in_progress``.
Should persistence stop answering part-way, the response ends without its last chunk and the
connection is closed: the download is visibly cut off, never a valid shorter document.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Literal

from pam_shared import logs
from pam_shared.read_api import ExportHead, ExportPage, ExportRequest, export_page_decoder
from pam_shared.timers import TimerStore
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from pam_gateway.export_document import ExportDocument
from pam_gateway.read_api import ApiError, ReadApi, guarded

log = logging.getLogger("pam.gateway.export")

PAGE_ROWS = 200

Part = Literal["conversations", "analytics"]


class ExportCut(Exception):
    """Persistence stopped answering part-way: the document cannot be finished."""


class Exports:
    def __init__(self, api: ReadApi, timers: TimerStore) -> None:
        self.api = api
        self.timers = timers
        self.running: set[str] = set()
        """Users with an export streaming from this gateway."""

    def routes(self) -> list[Route]:
        return [Route("/api/v1/users/me/export", guarded(self.export))]

    async def export(self, request: Request) -> Response:
        user_id = (await self.api.identity(request)).user_id
        if user_id in self.running:
            raise ApiError("export_in_progress")
        self.running.add(user_id)
        try:
            return await self._start(user_id)
        except BaseException:
            self.running.discard(user_id)
            raise

    async def _start(self, user_id: str) -> Response:
        """Everything but the pages after the first, so a failure here is still a plain error."""
        first = await self._ask(user_id, "conversations", None)
        try:
            usage = await self.api.budgets.usage(user_id)
            timers = await self.timers.pending(user_id)
        except Exception:  # NATS trouble, a timeout
            raise ApiError("export_unavailable") from None
        assert first.user is not None  # the first page always carries it
        now = datetime.now(UTC)
        user = first.user
        head = ExportHead(user_id, now, user.first_seen_at, user.last_seen_at, user.privacy, usage, timers)
        return ExportResponse(
            self._document(user_id, head, first),
            release=lambda: self.running.discard(user_id),
            filename=f"pam-export-{now:%Y%m%dT%H%M%SZ}.json",
        )

    async def _document(self, user_id: str, head: ExportHead, page: ExportPage) -> AsyncGenerator[bytes, None]:
        document = ExportDocument()
        yield document.head(head) + document.conversations(page.conversations)
        served = 1
        while page.next_cursor is not None:
            page = await self._next(user_id, "conversations", page.next_cursor, served)
            served += 1
            yield document.conversations(page.conversations)
        yield document.between()
        cursor: str | None = None
        while True:
            page = await self._next(user_id, "analytics", cursor, served)
            served += 1
            yield document.analytics(page.analytics)
            if (cursor := page.next_cursor) is None:
                break
        yield document.end()

    async def _next(self, user_id: str, part: Part, cursor: str | None, served: int) -> ExportPage:
        """The page after ``cursor``; ``ExportCut`` (logged) when persistence does not give it."""
        try:
            return await self._ask(user_id, part, cursor)
        except ApiError as exc:
            extra = {"user_id": user_id, "marker": logs.ERROR}
            log.warning("export cut off at page %d (%s): %s", served + 1, part, exc.code, extra=extra)
            raise ExportCut from None

    async def _ask(self, user_id: str, part: Part, cursor: str | None) -> ExportPage:
        query = ExportRequest(user_id, part, cursor, PAGE_ROWS)
        page: ExportPage = await self.api.ask(self.api.names.export, query, export_page_decoder)
        return page


class ExportResponse(StreamingResponse):
    """A streamed download that is cut off, not finished, when its document cannot be, and
    that frees its user's turn however it ends (done, cut off, or the client gone)."""

    def __init__(self, body: AsyncGenerator[bytes, None], release: Callable[[], None], filename: str) -> None:
        headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}
        super().__init__(body, media_type="application/json", headers=headers)
        self._body = body
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                await self._body.aclose()
            finally:
                self._release()

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async for chunk in self._body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except ExportCut:
            return  # no last chunk: uvicorn closes the connection, and the client sees the body cut off
        await send({"type": "http.response.body", "body": b"", "more_body": False})
