"""Answering one chat: classify, pick an engine, stream the answer, always end it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from pam_shared import logs
from pam_shared.internal import ChatRequest

from pam_orchestrator import tools
from pam_orchestrator.engine import Engine, EngineFailure
from pam_orchestrator.intents import classify
from pam_orchestrator.replies import ReplyStream

log = logging.getLogger("pam.orchestrator.answer")

PROGRESS_INTERVAL_SECONDS = 2.0


async def answer(request: ChatRequest, engine: Engine, replies: ReplyStream) -> None:
    """Stream ``engine``'s answer; the gateway always gets exactly one final frame."""
    extra = {"session_id": request.session_id, "user_id": request.user_id, "message_id": replies.message_id}
    intent = classify(request.message)
    keepalive = asyncio.create_task(_keep_alive(replies))
    started = time.monotonic()
    try:
        async for piece in engine.stream(request, intent, []):
            if isinstance(piece, str):
                await replies.chunk(piece)
            else:
                await replies.ui_actions(piece)
        text = replies.text or tools.describe(replies.actions)
        await replies.finish(text, intent)
        log.info(
            "answered %s via %s in %.0f ms",
            intent,
            engine.name,
            (time.monotonic() - started) * 1000,
            extra={**extra, "marker": logs.OK},
        )
    except EngineFailure as exc:
        log.warning("LLM failed: %s", exc.kind, extra={**extra, "marker": logs.ERROR})
        await replies.fail("llm_error", {"kind": exc.kind})
    except Exception:
        log.exception("answer failed", extra={**extra, "marker": logs.ERROR})
        await replies.fail("internal_error")
    finally:
        keepalive.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keepalive


async def _keep_alive(replies: ReplyStream) -> None:
    """Tell the gateway we are alive whenever nothing else has gone out for a while."""
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL_SECONDS)
        if time.monotonic() - replies.last_sent >= PROGRESS_INTERVAL_SECONDS:
            await replies.progress()
