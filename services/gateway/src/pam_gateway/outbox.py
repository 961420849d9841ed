"""An ordered, bounded send queue for one socket.

Replies arrive from NATS callbacks that must never wait on a slow client.  A frame
that finds nothing queued is written at once, in the caller's turn: the socket's send
is started right there and, as long as the client keeps reading, finishes without
waiting (no task, no loop turn per frame: a streamed answer is hundreds of frames).
Only a send that has to wait (the client's buffer is full) goes on in a writer task,
and frames put meanwhile queue behind it; the writer exists only while that lasts,
which keeps idle sockets cheap.  A client that stops reading is cut off (1013) once
its queue passes the byte limit, instead of growing gateway memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable

from pam_shared.eager import resumed
from pam_shared.protocol import TRY_AGAIN_LATER
from starlette.websockets import WebSocket

from pam_gateway import metrics

log = logging.getLogger("pam.gateway.outbox")

CLOSE_TIMEOUT_SECONDS = 5.0


class Outbox:
    __slots__ = ("_websocket", "_queue", "_queued", "_limit", "_writer", "_closer", "closed", "close_code")

    def __init__(self, websocket: WebSocket, limit_bytes: int) -> None:
        self._websocket = websocket
        self._queue: deque[str] | None = None  # made on first use: most sockets sit idle
        self._queued = 0
        self._limit = limit_bytes
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self.closed = False
        self.close_code: int | None = None

    def put(self, text: str) -> None:
        """Send one frame, or queue it behind a send that waits; never blocks."""
        if self.closed:
            return
        metrics.count_out(text)
        if self._writer is None:
            self._send_now(text)
            return
        if self._queue is None:
            self._queue = deque()
        self._queue.append(text)
        self._queued += len(text)
        if self._queued > self._limit:
            log.warning("slow consumer: send queue over %d bytes, disconnecting", self._limit)
            self._shut(TRY_AGAIN_LATER)

    def _send_now(self, text: str) -> None:
        """Run the socket's send until it is done or has to wait; a writer task finishes a wait."""
        send = self._websocket.send_text(text)
        try:
            waiting = send.send(None)
        except StopIteration:
            return
        except Exception:  # the peer went away mid-send; the receive loop sees it too
            self.closed = True
            return
        self._writer = asyncio.create_task(self._drain(resumed(send, waiting)))

    async def close(self, code: int) -> None:
        """Send what is queued (within a bound), then close the socket with ``code``."""
        self.closed = True
        self.close_code = code
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._writer), CLOSE_TIMEOUT_SECONDS)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._websocket.close(code), CLOSE_TIMEOUT_SECONDS)

    def close_soon(self, code: int) -> None:
        """Like ``close``, from code that cannot wait; later frames are dropped."""
        if self._closer is None:
            self._closer = asyncio.create_task(self.close(code))

    def discard(self) -> None:
        """The socket is gone: drop queued frames and stop writing."""
        self.closed = True
        self._queue = None
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None

    async def _drain(self, started: Awaitable[None]) -> None:
        """Finish the send that had to wait, then everything queued behind it."""
        try:
            await started
            while self._queue:
                text = self._queue.popleft()
                self._queued -= len(text)
                await self._websocket.send_text(text)
        except Exception:  # the peer went away mid-send; the receive loop sees it too
            self.closed = True
            self._queue = None
        finally:
            self._writer = None

    def _shut(self, code: int) -> None:
        self.discard()
        self.close_soon(code)
