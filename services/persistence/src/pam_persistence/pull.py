"""Batches from the shared durable pull consumer, the next one already on its way while one is written.

nats-py's ``fetch`` waits for every message with a timeout of its own (a task each); at a
batch of 500 that costs more CPU than the messages (measured: 28 µs per message with its ack,
against 12 through one subscription's callback). Here one subscription gathers what the
pull requests bring; one request is open at a time, and a new one goes out as soon as a
batch is handed over, so JetStream delivers the next batch while this one is written.

A message delivered here belongs to this instance until it is acked, nakked or its ack
wait passes, whichever request it came with: nothing is dropped, and ``close`` hands back
(naks) what was delivered but never handed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

STATUS = "Status"
"""Header of JetStream's status messages (404 no messages, 408 request expired, 409 ...): a request's end."""
SLACK_SECONDS = 1.0
"""How long past its expiry a request counts as open: a status lost in a reconnect must not stall us."""


class PullRequest(msgspec.Struct, omit_defaults=True):
    """The body of ``$JS.API.CONSUMER.MSG.NEXT``: up to ``batch`` messages within ``expires`` ns."""

    batch: int
    expires: int


_request_encoder = msgspec.json.Encoder()


class Puller:
    def __init__(self, nc: Client, stream: str, durable: str, expires: float) -> None:
        self.nc = nc
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.expires = expires
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        self._ready: list[Msg] = []
        self._woken = asyncio.Event()
        self._wanted = 1
        self._size = 1
        self._requests = 0
        self._open_request = ""
        self._open_until = 0.0
        self._owed = 0

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(f"{self._inbox}.*", cb=self._on_message)

    async def next_batch(self, size: int, linger: float) -> list[Msg]:
        """Up to ``size`` messages: waits up to ``expires`` for a first one, then up to ``linger``
        for the rest (a backlog fills a batch at once, a quiet stream is written soon)."""
        self._size = size
        await self._ask()
        if await self._gathered(1, self.expires):
            await self._gathered(size, linger)
        batch, self._ready = self._ready[:size], self._ready[size:]
        await self._ask()
        return batch

    async def close(self) -> None:
        """Stop listening and hand back what was delivered but not taken."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        left, self._ready = self._ready, []
        with contextlib.suppress(Exception):
            for msg in left:
                await msg.nak()

    async def _gathered(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` messages are here (True) or ``timeout`` passes (False),
        asking again whenever the open request ends."""
        deadline = time.monotonic() + timeout
        while len(self._ready) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._wanted = count
            self._woken.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), left)
            await self._ask()
        return True

    async def _ask(self) -> None:
        """Open a request for the rest of a batch, unless one is open or a batch is here."""
        if len(self._ready) >= self._size or (self._open_request and time.monotonic() < self._open_until):
            return
        self._requests += 1
        self._open_request = f"{self._inbox}.{self._requests}"
        self._open_until = time.monotonic() + self.expires + SLACK_SECONDS
        self._owed = self._size - len(self._ready)
        body = _request_encoder.encode(PullRequest(self._owed, int(self.expires * 1e9)))
        await self.nc.publish(self.subject, body, reply=self._open_request)

    async def _on_message(self, msg: Msg) -> None:
        """Events keep their own subject; a status comes on the request's reply subject, so an
        earlier request's late end is told apart.  Every event counts against the open request
        (an earlier one's only arrive after a reconnect, and then at worst we ask early)."""
        if msg.headers and STATUS in msg.headers:
            if msg.subject == self._open_request:
                self._open_request = ""
        else:
            self._ready.append(msg)
            self._owed -= 1
            if self._owed <= 0:
                self._open_request = ""
        if len(self._ready) >= self._wanted or not self._open_request:
            self._woken.set()
