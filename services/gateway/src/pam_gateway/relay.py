"""The gateway's side of the chat path: publish requests, route streamed replies back.

Each gateway instance owns one wildcard subscription, ``pam.reply.<gateway_id>.>``;
the last subject token is the request id, which finds the socket to forward to.
Reply payloads are already client frames, so they are forwarded without decoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pam_shared import logs, subjects
from pam_shared.errors import error_frame
from pam_shared.internal import ChatRequest, chat_request_encoder
from pam_shared.protocol import encoder
from pam_shared.subjects import Subjects

from pam_gateway.outbox import Outbox

log = logging.getLogger("pam.gateway.relay")

NO_RESPONDERS = "503"


@dataclass(slots=True)
class Pending:
    outbox: Outbox
    reply_to: str | None
    last_seen: float


class Relay:
    def __init__(self, nc: Client, names: Subjects, gateway_id: str, timeout: float) -> None:
        self.nc = nc
        self.names = names
        self.gateway_id = gateway_id
        self.timeout = timeout
        self.pending: dict[str, Pending] = {}
        self._prefix = names.reply_prefix(gateway_id)
        self._ids = itertools.count(1)
        self._sub: Subscription | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(self._prefix + ">", cb=self._on_reply)
        self._sweeper = asyncio.create_task(self._sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    def next_request_id(self) -> str:
        return str(next(self._ids))

    async def send(self, request: ChatRequest, outbox: Outbox, reply_to: str | None) -> None:
        """Hand a chat to the orchestrators; every reply goes to ``outbox``."""
        self.pending[request.request_id] = Pending(outbox, reply_to, time.monotonic())
        reply = self._prefix + request.request_id
        await self.nc.publish(self.names.chat_request, chat_request_encoder.encode(request), reply=reply)

    async def _on_reply(self, msg: Msg) -> None:
        request_id = msg.subject[len(self._prefix) :]
        pending = self.pending.get(request_id)
        if pending is None:
            return  # the answer ended or timed out already
        headers = msg.headers
        if headers:
            if headers.get("Status") == NO_RESPONDERS:
                self._fail(request_id, "orchestrator_unavailable")
                return
            kind = headers.get(subjects.REPLY_KIND_HEADER)
            if kind == subjects.REPLY_PROGRESS:
                pending.last_seen = time.monotonic()
                return
            if kind == subjects.REPLY_END:
                del self.pending[request_id]
        pending.last_seen = time.monotonic()
        pending.outbox.put(msg.data.decode())

    def _fail(self, request_id: str, code: str) -> None:
        pending = self.pending.pop(request_id)
        frame = error_frame(code, reply_to=pending.reply_to)
        pending.outbox.put(encoder.encode(frame).decode())
        log.warning("chat %s failed: %s", request_id, code, extra={"marker": logs.ERROR})

    async def _sweep(self) -> None:
        """Fail every request that has heard nothing for ``timeout`` seconds."""
        interval = min(1.0, self.timeout / 4)
        while True:
            await asyncio.sleep(interval)
            deadline = time.monotonic() - self.timeout
            for request_id in [r for r, p in self.pending.items() if p.last_seen < deadline]:
                self._fail(request_id, "timeout")
