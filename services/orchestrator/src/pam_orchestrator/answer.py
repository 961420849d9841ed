"""Answering one chat: classify, stream the engine's answer, always end it, say how it went."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

from pam_shared import logs
from pam_shared.errors import ErrorCode
from pam_shared.internal import ChatRequest, Turn
from pam_shared.protocol import Truncation

from pam_orchestrator import tools
from pam_orchestrator.engine import Cut, Engine, EngineFailure, Piece, Source, Usage
from pam_orchestrator.inflight import Answering
from pam_orchestrator.intents import classify
from pam_orchestrator.replies import ReplyStream

log = logging.getLogger("pam.orchestrator.answer")

BeforeEnd = Callable[[str | None], Awaitable[None]]
"""Called with the answer's text (None when it failed) just before the end is sent."""


@dataclass
class Outcome:
    """What happened, for analytics and the assistant-message record."""

    intent: str
    text: str
    total_ms: float
    first_chunk_ms: float | None
    usage: Usage | None
    error_code: ErrorCode | None
    error_kind: str | None = None
    source: Source | None = None
    """The model endpoint that answered (or failed last); None for the offline engine."""
    truncated: Truncation | None = None


async def answer(
    request: ChatRequest,
    engine: Engine,
    replies: ReplyStream,
    history: list[Turn],
    progress_every: float,
    before_end: BeforeEnd | None = None,
    answering: Answering | None = None,
) -> Outcome:
    """Stream ``engine``'s answer; the gateway always gets exactly one final frame.

    While the engine is quiet, a progress message goes out every ``progress_every``
    seconds, so the gateway can tell a slow model from a dead worker.  ``before_end``
    runs before that frame goes out, so whatever follows the end can rely on it.  A stop
    (``answering``) closes the engine's stream and ends the answer with what was said.
    """
    extra = {"session_id": request.session_id, "user_id": request.user_id, "message_id": replies.message_id}
    intent = classify(request.message)
    keepalive = asyncio.create_task(_keep_alive(replies, progress_every))
    started = time.monotonic()
    heard, text, error_kind = _Heard(), "", None
    error_code: ErrorCode | None = None
    try:
        await heard.stream(engine.stream(request, intent, [t.prompt for t in history]), replies, answering)
        text = replies.text or tools.describe(replies.actions)
        if before_end is not None:
            await before_end(text)
        await replies.finish(text, intent, heard.cut)
    except EngineFailure as exc:
        log.warning("LLM failed: %s", exc.kind, extra={**extra, "marker": logs.ERROR})
        error_code, error_kind = "llm_error", exc.kind
        if before_end is not None:
            await before_end(None)
        await replies.fail(error_code, {"kind": exc.kind})
    except Exception:
        log.exception("answer failed", extra={**extra, "marker": logs.ERROR})
        error_code = "internal_error"
        await replies.fail(error_code)
    finally:
        keepalive.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keepalive
    total_ms = (time.monotonic() - started) * 1000
    first = (replies.first_chunk_at - started) * 1000 if replies.first_chunk_at else None
    if error_code is None:
        via = heard.source.endpoint if heard.source else engine.name
        log.info("answered %s via %s in %.0f ms", intent, via, total_ms, extra={**extra, "marker": logs.OK})
    cut = heard.cut.reason if heard.cut else None
    return Outcome(intent, text, total_ms, first, heard.usage, error_code, error_kind, heard.source, cut)


class _Heard:
    """What the engine said besides its text and actions (which go straight to the replies)."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.cut: Cut | None = None
        self.source: Source | None = None

    async def stream(self, pieces: AsyncGenerator[Piece], replies: ReplyStream, answering: Answering | None) -> None:
        """Pass the pieces on; a stop closes the engine's stream (the provider sees it closed).
        The stop is looked for before the model is asked (it came while the conversation was
        read) and after every await: one may have swallowed its cancellation (``inflight``)."""
        if answering is not None:
            answering.phase = "streaming"
        try:
            async with contextlib.aclosing(pieces):
                _unless_stopped(answering)
                async for piece in pieces:
                    _unless_stopped(answering)  # the engine's wait for this piece took the stop
                    await self._take(piece, replies)
                    _unless_stopped(answering)  # keeping it did (``ui_actions``: a JetStream publish)
            _unless_stopped(answering)
        except asyncio.CancelledError:
            if answering is None or not answering.stopped:
                raise
            asyncio.current_task().uncancel()  # type: ignore[union-attr]  # we run in a task
            self.cut = Cut("stopped")
        if answering is not None:
            answering.phase = "ending"

    async def _take(self, piece: Piece, replies: ReplyStream) -> None:
        if isinstance(piece, str):
            await replies.chunk(piece)
        elif isinstance(piece, Usage):
            self.usage = piece
        elif isinstance(piece, Cut):
            self.cut = piece
        elif isinstance(piece, Source):
            self.source, self.usage = piece, None
        else:
            await replies.ui_actions(piece)


def _unless_stopped(answering: Answering | None) -> None:
    """End the stream here if the answer was stopped (its cancellation swallowed, or never sent)."""
    if answering is not None and answering.stopped:
        raise asyncio.CancelledError


async def _keep_alive(replies: ReplyStream, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        if time.monotonic() - replies.last_sent >= interval:
            await replies.progress()
