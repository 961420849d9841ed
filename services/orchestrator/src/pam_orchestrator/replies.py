"""Streaming one answer back to the gateway that asked, through its reply subject.

Payloads are finished client frames, so the gateway forwards them untouched.  The
last frame (``chat_response`` or ``error``) carries the ``Pam-Reply: end`` header (and
``Pam-Turn``, where the chat gave its turn up);
``progress`` messages tell the gateway we are still working while the LLM is quiet.
Deltas still waiting to be merged when a lasting frame goes out ride in its message, as a
``chat_chunk`` before it (``Pam-Leading-Chunk``): the last chunk of an answer costs no
message of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from nats.aio.client import Client
from pam_shared import delivery, eager, subjects
from pam_shared.errors import ErrorCode, error_frame
from pam_shared.protocol import ChatChunk, ChatResponse, Queued, UiAction, UiActions, encoder, now_iso
from pam_shared.subjects import Subjects

from pam_orchestrator.engine import Cut

log = logging.getLogger("pam.orchestrator.replies")

END = {subjects.REPLY_KIND_HEADER: subjects.REPLY_END}
PROGRESS = {subjects.REPLY_KIND_HEADER: subjects.REPLY_PROGRESS}
LEADING = {subjects.LEADING_CHUNK_HEADER: "1"}


Respond = Callable[[bytes, dict[str, str] | None], Coroutine[Any, Any, None]]
"""Publishes one message to the requester's reply subject (``nats.micro`` Request.respond); a
coroutine, since a merged chunk's timer runs it eagerly (``pam_shared.eager``)."""

Keep = Callable[[bytes], Awaitable[dict[str, str]]]
"""Stores a lasting frame for resume; returns the headers (event id) to send it with."""


class Keeper:
    """Keeps an answer's lasting frames for resume (see ``pam_shared.delivery``)."""

    def __init__(self, nc: Client, names: Subjects, user_id: str, chat_id: str) -> None:
        self.nc, self.names, self.user_id, self.chat_id = nc, names, user_id, chat_id

    async def __call__(self, frame: bytes) -> dict[str, str]:
        event_id = await delivery.keep_answer_frame(self.nc, self.names, self.user_id, self.chat_id, frame)
        return {subjects.EVENT_ID_HEADER: event_id} if event_id else {}


class ReplyStream:
    """One answer's frames, in order.

    Deltas that arrive within ``window`` seconds of the last chunk sent are merged into
    the next one: a model that emits tokens in bursts (or the offline engine, which emits
    all at once) costs a few messages instead of one per token, while a steady stream is
    forwarded token by token with no added delay.
    """

    def __init__(
        self, respond: Respond, reply_to: str | None, keep: Keep, window: float, restart: bool = False
    ) -> None:
        self.respond = respond
        self.restart = restart
        self.keep = keep
        self.reply_to = reply_to
        self.window = window
        self.message_id = uuid.uuid4().hex
        self.parts: list[str] = []
        self.actions: list[UiAction] = []
        self.last_sent = time.monotonic()
        self.first_chunk_at: float | None = None
        self.finished_at: float | None = None
        self.ends_after: Callable[[], Awaitable[None]] | None = None
        """Done beside keeping the end, before it is sent: giving the conversation's turn up."""
        self.turn: int | None = None
        """The revision the user's turn was given up at, before the end (``holds``): sent with it."""
        self._seq = 0
        self._unsent = 0
        self._chunk_sent_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._sending: asyncio.Task[None] | None = None
        """A merged chunk's send that had to wait: whatever is sent next goes after it."""

    @property
    def text(self) -> str:
        return "".join(self.parts)

    async def chunk(self, delta: str) -> None:
        self.parts.append(delta)
        self._unsent += 1
        if self._timer is not None:
            return
        wait = self._chunk_sent_at + self.window - time.monotonic()
        if wait <= 0:
            await self._send_chunk()
        else:
            self._timer = asyncio.get_running_loop().call_later(wait, self._send_due)

    def _send_due(self) -> None:
        """The window is over: the timer sends the merged deltas itself, in its own turn (no
        task and no sleep per merged frame); only a send that has to wait becomes a task."""
        self._timer = None
        frame = self._next_chunk()
        if frame is None:
            return
        self.last_sent = time.monotonic()
        if self._sending is not None:  # the last one still waits: this one goes after it
            sending: asyncio.Task[None] | None = asyncio.create_task(self._send_after(self._sending, frame))
        else:
            try:
                sending = eager.start(self.respond(frame, None))
            except Exception:
                log.warning("could not send a merged chunk", exc_info=True)
                return
        if sending is not None:
            self._sending = sending
            sending.add_done_callback(self._sent)

    async def _send_after(self, before: asyncio.Task[None], frame: bytes) -> None:
        await asyncio.wait([before])
        await self.respond(frame, None)

    def _sent(self, sending: asyncio.Task[None]) -> None:
        if self._sending is sending:
            self._sending = None
        if not sending.cancelled() and (exc := sending.exception()) is not None:
            log.warning("could not send a merged chunk", exc_info=exc)

    async def _send_chunk(self) -> None:
        frame = self._next_chunk()
        if frame is not None:
            await self._publish(frame)

    def _next_chunk(self) -> bytes | None:
        """The deltas not sent yet, as the next ``chat_chunk``; None when there are none."""
        if not self._unsent:
            return None
        delta = "".join(self.parts[-self._unsent :])
        self._unsent = 0
        self._chunk_sent_at = time.monotonic()
        if self.first_chunk_at is None:
            self.first_chunk_at = self._chunk_sent_at
        frame = ChatChunk(
            message_id=self.message_id,
            seq=self._seq,
            delta=delta,
            reply_to=self.reply_to,
            restart=self.restart and self._seq == 0,
        )
        self._seq += 1
        return encoder.encode(frame)

    async def flush(self) -> None:
        """Send merged deltas still waiting; every other frame goes out after them."""
        chunk = self._take_chunk()
        if chunk is not None:
            await self._publish(chunk)

    def _take_chunk(self) -> bytes | None:
        """The waiting deltas as a chunk, which its caller sends: no timer sends them now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return self._next_chunk()

    async def ui_actions(self, actions: list[UiAction]) -> None:
        self.actions.extend(actions)
        frame = UiActions(actions=actions, message_id=self.message_id, reply_to=self.reply_to)
        await self._publish_kept(encoder.encode(frame))

    async def finish(self, text: str, intent: str, truncated: Cut | None = None) -> None:
        self.finished_at = time.time()  # before the client can see it, so its next chat sorts after
        frame = ChatResponse(
            message=text,
            timestamp=now_iso(),
            message_id=self.message_id,
            intent=intent,
            reply_to=self.reply_to,
            truncated=truncated.reason if truncated else None,
        )
        await self._publish_kept(encoder.encode(frame), end=True)

    async def fail(self, code: ErrorCode, details: object = None) -> None:
        await self._publish_kept(encoder.encode(error_frame(code, details, self.reply_to)), end=True)

    async def progress(self) -> None:
        await self._publish(b"", PROGRESS)

    async def queued(self, position: int) -> None:
        """The chat waits for the answer before it (not kept: a resumed socket learns it anew)."""
        await self._publish(encoder.encode(Queued(position=position, reply_to=self.reply_to)))

    async def _publish_kept(self, data: bytes, end: bool = False) -> None:
        """Keep ``data`` for resume, then send it, led by the deltas still waiting, if any; an
        end goes with where the turn was given up (``ends_after`` runs beside keeping it)."""
        chunk = self._take_chunk()
        if end and (also := self.ends_after) is not None:
            self.ends_after = None
            headers, _ = await asyncio.gather(self.keep(data), also())
        else:
            headers = await self.keep(data)
        if end:
            headers = {**headers, **END}
            if self.turn is not None:
                headers[subjects.TURN_HEADER] = str(self.turn)
        if chunk is not None:
            data, headers = chunk + b"\n" + data, {**headers, **LEADING}
        await self._publish(data, headers or None)

    async def _publish(self, data: bytes, headers: dict[str, str] | None = None) -> None:
        while (sending := self._sending) is not None and not sending.done():  # merged chunks waiting go first
            await asyncio.wait([sending])
        self.last_sent = time.monotonic()
        await self.respond(data, headers)
