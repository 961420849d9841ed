"""The gateway's side of the chat path: publish requests, route streamed replies back.

Each gateway instance owns one wildcard subscription, ``<ns>.reply.<gateway_id>.>``;
the last subject token is the reply id (one per attempt at a chat), which finds the
socket to forward to.
Reply payloads are already client frames, so they are forwarded without decoding (a lasting
frame may come led by the answer's last chunk in the same message: ``Pam-Leading-Chunk``).
An answer's end says where its user's conversation turn was given up (``turn_hints``).

Orchestrators send progress while the model is quiet, so silence means a lost
worker.  Unless the worker kept its answer's end before it died (then that end is
delivered), the chat is retried once on another worker, under a new request id so a
late reply from the first one is ignored.  A retry of an answer that had streamed
starts over: its first chunk says ``restart``.  Only a retry that goes silent too ends
the answer, with ``timeout`` (nothing streamed) or ``worker_lost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pam_shared import delivery, logs, subjects, tracing
from pam_shared.background import Tasks, survive
from pam_shared.errors import ErrorCode, error_frame
from pam_shared.protocol import encoder
from pam_shared.subjects import Subjects

from pam_gateway import metrics
from pam_gateway.inbox import KeptFrames
from pam_gateway.turn_hints import TurnHints

log = logging.getLogger("pam.gateway.relay")

NO_RESPONDERS = "503"


class Recipient(Protocol):
    """The socket an answer is for (see ``inbox.Inbox``)."""

    @property
    def user_id(self) -> str: ...

    def asked(self, chat_id: str) -> None: ...

    def answered(self, chat_id: str) -> None: ...

    def deliver(self, frame: bytes, event_id: str | None) -> None: ...


@dataclass(slots=True)
class Pending:
    recipient: Recipient
    chat_id: str
    reply_to: str | None
    request: bytes
    traceparent: str
    started: float
    last_seen: float
    streamed: bool = False
    retried: bool = False


class Relay:
    def __init__(
        self, nc: Client, names: Subjects, gateway_id: str, timeout: float, kept: KeptFrames, tasks: Tasks
    ) -> None:
        self.nc = nc
        self.kept = kept
        self.tasks = tasks
        self.names = names
        self.timeout = timeout
        self.pending: dict[str, Pending] = {}
        self.turns = TurnHints()
        self.idle = asyncio.Event()
        self.idle.set()
        self._prefix = names.reply_prefix(gateway_id)
        self._ids = itertools.count(1)
        self._sub: Subscription | None = None
        self._probes: dict[str, asyncio.Future[None]] = {}

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(self._prefix + ">", cb=self._on_reply)
        self.tasks.start("relay-sweep", self._sweep())

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def send(
        self, recipient: Recipient, chat_id: str, request: bytes, reply_to: str | None, traceparent: str
    ) -> None:
        """Hand an encoded ChatRequest to the orchestrators; every reply goes to ``recipient``."""
        recipient.asked(chat_id)
        now = time.monotonic()
        await self._publish(Pending(recipient, chat_id, reply_to, request, traceparent, now, now))

    async def _publish(self, pending: Pending, restart: bool = False) -> None:
        reply_id = str(next(self._ids))
        self.pending[reply_id] = pending
        self.idle.clear()
        headers = {tracing.TRACEPARENT: pending.traceparent}
        if restart:
            headers[subjects.RESTART_HEADER] = "1"
        await self.nc.publish(self.names.chat_request, pending.request, reply=self._prefix + reply_id, headers=headers)

    async def probe(self, timeout: float) -> bool:
        """Send ourselves a message through NATS: proves the reply subscription still receives."""
        probe_id = f"probe-{next(self._ids)}"
        arrived = asyncio.get_running_loop().create_future()
        self._probes[probe_id] = arrived
        try:
            await self.nc.publish(self._prefix + probe_id, b"")
            await asyncio.wait_for(arrived, timeout)
            return True
        except (TimeoutError, OSError, ConnectionError):
            return False
        finally:
            self._probes.pop(probe_id, None)

    async def _on_reply(self, msg: Msg) -> None:
        reply_id = msg.subject[len(self._prefix) :]
        pending = self.pending.get(reply_id)
        if pending is None:
            if (probe := self._probes.get(reply_id)) is not None and not probe.done():
                probe.set_result(None)
            return  # the answer ended, timed out or was retried already
        pending.last_seen = time.monotonic()
        headers = msg.headers
        if headers:
            if headers.get("Status") == NO_RESPONDERS:
                await self._fail(reply_id, "orchestrator_unavailable")
                return
            kind = headers.get(subjects.REPLY_KIND_HEADER)
            if kind == subjects.REPLY_PROGRESS:
                return
            ended = kind == subjects.REPLY_END
            if ended:
                self._forget(reply_id)
                metrics.answer.observe(pending.last_seen - pending.started)
                if (turn := headers.get(subjects.TURN_HEADER)) is not None and turn.isdigit():
                    self.turns.learn(pending.recipient.user_id, int(turn))
            event_id = headers.get(subjects.EVENT_ID_HEADER)
        else:
            ended, event_id = False, None
        if not pending.streamed:
            pending.streamed = True
            metrics.first_chunk.observe(pending.last_seen - pending.started)
        data = msg.data
        if headers and subjects.LEADING_CHUNK_HEADER in headers:
            chunk, _, data = data.partition(b"\n")
            pending.recipient.deliver(chunk, None)
        pending.recipient.deliver(data, event_id)
        if ended:
            pending.recipient.answered(pending.chat_id)

    async def _kept_end(self, reply_id: str) -> bool:
        """A worker that died right after keeping its answer's end: deliver that end instead."""
        pending = self.pending[reply_id]
        kept = await self.kept.answer_end(pending.recipient.user_id, pending.chat_id)
        if not kept:
            return False
        self._forget(reply_id)
        for frame, event_id in kept:
            pending.recipient.deliver(frame, event_id)
        pending.recipient.answered(pending.chat_id)
        log.info("chat %s: worker gone, its kept end delivered", pending.chat_id, extra={"marker": logs.RECONNECT})
        return True

    def _forget(self, reply_id: str) -> Pending:
        """Stop waiting on ``reply_id``; the caller tells the recipient once the end is delivered."""
        pending = self.pending.pop(reply_id)
        if not self.pending:
            self.idle.set()
        return pending

    async def _fail(self, reply_id: str, code: ErrorCode) -> None:
        """End an answer with an error, kept for resume like any answer's end."""
        pending = self._forget(reply_id)
        metrics.errors.labels(code).inc()
        frame = encoder.encode(error_frame(code, reply_to=pending.reply_to))
        user_id = pending.recipient.user_id
        event_id = await delivery.keep_answer_frame(self.nc, self.names, user_id, pending.chat_id, frame)
        pending.recipient.deliver(frame, event_id)
        pending.recipient.answered(pending.chat_id)
        trace_id = tracing.trace_id_of(pending.traceparent)
        log.warning("chat %s failed: %s", pending.chat_id, code, extra={"marker": logs.ERROR, "trace_id": trace_id})

    async def _sweep(self) -> None:
        """Deal with every request that has heard nothing for ``timeout`` seconds."""
        interval = min(1.0, self.timeout / 4)
        while True:
            await asyncio.sleep(interval)
            deadline = time.monotonic() - self.timeout
            for reply_id in [r for r, p in self.pending.items() if p.last_seen < deadline]:
                with survive("relay-sweep", f"silent chat {reply_id}"):
                    if reply_id in self.pending:
                        await self._silent(reply_id)

    async def _silent(self, reply_id: str) -> None:
        pending = self.pending[reply_id]
        if pending.streamed and await self._kept_end(reply_id):
            return
        if pending.retried:
            await self._fail(reply_id, "worker_lost" if pending.streamed else "timeout")
            return
        trace_id = tracing.trace_id_of(pending.traceparent)
        extra = {"marker": logs.RECONNECT, "trace_id": trace_id}
        log.warning("chat %s: worker silent, retrying on another", pending.chat_id, extra=extra)
        self._forget(reply_id)  # still asked: the retry answers it
        restart, pending.streamed = pending.streamed, False
        pending.retried, pending.last_seen = True, time.monotonic()
        await self._publish(pending, restart)
