"""A user being erased, as a gateway sees it: their sockets closed (``ERASED``), their chats and
new sockets refused until persistence says the erasure is done (``pam_persistence.erasure``),
their privacy settings and spent budget markers dropped from memory."""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pam_shared import logs
from pam_shared.background import survive
from pam_shared.erasure import erasing_decoder
from pam_shared.protocol import ERASED
from pam_shared.subjects import Subjects

from pam_gateway.consent import PrivacyBook
from pam_gateway.registry import Registry
from pam_gateway.spent import SpentBook

log = logging.getLogger("pam.gateway.erasing")


class Erasures:
    def __init__(
        self, nc: Client, names: Subjects, instance: str, registry: Registry, book: PrivacyBook, spent: SpentBook
    ) -> None:
        self.nc, self.names, self.instance = nc, names, instance
        self.registry, self.book, self.spent = registry, book, spent
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(self.names.erasing, cb=self._on_erasing)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    async def _on_erasing(self, msg: Msg) -> None:
        with survive("gateway-erasures", "erasure"):
            erasing = erasing_decoder.decode(msg.data)
            self.book.erase(erasing.user_id, erasing.done)
            self.spent.forget(erasing.user_id)  # at the start and again once the bucket is purged
            sessions = [] if erasing.done else self.registry.sessions_of(erasing.user_id)
            await asyncio.gather(*(session.outbox.close(ERASED) for session in sessions))
            if sessions:
                log.info("closed %d sockets of a user being erased", len(sessions), extra={"marker": logs.CONNECTION})
            await msg.respond(self.instance.encode())
