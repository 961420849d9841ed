"""Every JetStream call that touches one key-value bucket, as the NATS server sees them.

A key-value read is a request on ``$JS.API.…`` naming the bucket's stream; a write is a
publish on ``$KV.<bucket>.<key>`` awaiting its ack.  Core NATS hands a copy of each to any
subscriber, so plain subscriptions count them without touching the services.
"""

from __future__ import annotations

from nats.aio.client import Client
from nats.aio.subscription import Subscription


class JetStreamCalls:
    """The calls on ``bucket`` (and the messages on ``also``) made since the last ``taken``."""

    def __init__(self, nc: Client, bucket: str, also: str | None = None) -> None:
        self.nc, self.bucket, self.also = nc, bucket, also
        self._subs: list[Subscription] = []

    async def __aenter__(self) -> JetStreamCalls:
        for subject in ("$JS.API.>", f"$KV.{self.bucket}.>", *([self.also] if self.also else [])):
            self._subs.append(await self.nc.subscribe(subject))
        await self.nc.flush()
        return self

    async def __aexit__(self, *_: object) -> None:
        for sub in self._subs:
            await sub.unsubscribe()

    async def taken(self) -> list[str]:
        """The subjects of the calls made so far (then forgotten).  A call any connection made
        before this was routed to us before the server answers our ping, and our reader queues
        messages in the order they come: after the flush, every one is in a queue."""
        await self.nc.flush()
        seen = []
        for sub in self._subs:
            while sub.pending_msgs:
                seen.append((await sub.next_msg()).subject)
        stream = f"KV_{self.bucket}"
        return [subject for subject in seen if not subject.startswith("$JS.API.") or stream in subject]

    async def count(self) -> int:
        return len(await self.taken())
