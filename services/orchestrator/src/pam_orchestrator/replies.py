"""Streaming one answer back to the gateway that asked, through its reply subject.

Payloads are finished client frames, so the gateway forwards them untouched.  The
last frame (``chat_response`` or ``error``) carries the ``Pam-Reply: end`` header;
``progress`` messages tell the gateway we are still working while the LLM is quiet.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pam_shared import subjects
from pam_shared.errors import error_frame
from pam_shared.protocol import ChatChunk, ChatResponse, UiAction, UiActions, encoder

END = {subjects.REPLY_KIND_HEADER: subjects.REPLY_END}
PROGRESS = {subjects.REPLY_KIND_HEADER: subjects.REPLY_PROGRESS}


Respond = Callable[[bytes, dict[str, str] | None], Awaitable[None]]
"""Publishes one message to the requester's reply subject (``nats.micro`` Request.respond)."""


class ReplyStream:
    def __init__(self, respond: Respond, reply_to: str | None) -> None:
        self.respond = respond
        self.reply_to = reply_to
        self.message_id = uuid.uuid4().hex
        self.parts: list[str] = []
        self.actions: list[UiAction] = []
        self.last_sent = time.monotonic()
        self.first_chunk_at: float | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    async def chunk(self, delta: str) -> None:
        if self.first_chunk_at is None:
            self.first_chunk_at = time.monotonic()
        frame = ChatChunk(message_id=self.message_id, seq=len(self.parts), delta=delta, reply_to=self.reply_to)
        self.parts.append(delta)
        await self._publish(encoder.encode(frame))

    async def ui_actions(self, actions: list[UiAction]) -> None:
        self.actions.extend(actions)
        frame = UiActions(actions=actions, message_id=self.message_id, reply_to=self.reply_to)
        await self._publish(encoder.encode(frame))

    async def finish(self, text: str, intent: str) -> None:
        frame = ChatResponse(
            message=text,
            timestamp=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            message_id=self.message_id,
            intent=intent,
            reply_to=self.reply_to,
        )
        await self._publish(encoder.encode(frame), END)

    async def fail(self, code: str, details: object = None) -> None:
        await self._publish(encoder.encode(error_frame(code, details, self.reply_to)), END)

    async def progress(self) -> None:
        await self._publish(b"", PROGRESS)

    async def _publish(self, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.last_sent = time.monotonic()
        await self.respond(data, headers)
