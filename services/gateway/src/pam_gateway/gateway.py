"""The gateway's NATS parts and the sessions it holds, built once and started with the app.

Every part is made here, before NATS is connected (``Client()`` connects later), and is
handed what it needs; nothing else reaches into another part.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.micro import add_service
from nats.micro.service import Service
from pam_shared import __version__, bus, debugging, delivery, discovery, jetstream, logs
from pam_shared.auth import Identity
from pam_shared.background import Tasks
from pam_shared.budget import Budgets
from pam_shared.journal import Journal
from pam_shared.protocol import SERVICE_RESTART, Connection, now_iso
from pam_shared.settings import GatewaySettings
from pam_shared.timers import TimerStore

from pam_gateway.chats import ChatPath
from pam_gateway.consent import PrivacyBook
from pam_gateway.dialect import Dialect
from pam_gateway.erasing import Erasures
from pam_gateway.idempotency import ChatKeys
from pam_gateway.inbox import Inbox, KeptFrames
from pam_gateway.missed import MissedTimers
from pam_gateway.outbox import Outbox
from pam_gateway.pushes import Pushes
from pam_gateway.quota import UserQuota
from pam_gateway.registry import Registry
from pam_gateway.relay import Relay
from pam_gateway.session import Session
from pam_gateway.sockets import Sockets
from pam_gateway.spent import SpentBook

log = logging.getLogger("pam.gateway")

PROBE_TIMEOUT_SECONDS = 1.0


class Gateway:
    def __init__(self, settings: GatewaySettings) -> None:
        names = settings.subjects
        self.settings = settings
        self.started = time.time()
        self.nc = Client()
        self.tasks = Tasks()
        self.registry = Registry()
        self.kept = KeptFrames(self.nc.jetstream(), names)
        self.relay = Relay(self.nc, names, settings.instance_id, settings.reply_timeout_seconds, self.kept, self.tasks)
        self.journal = Journal.for_service(self.nc, settings, settings.journal, "gateway")
        self.quota = UserQuota(self.nc.jetstream(), names.rate_bucket, settings.user_messages_per_minute)
        self.timers = TimerStore(self.nc.jetstream(), names)
        self.missed = MissedTimers(self.timers)
        self.pushes = Pushes(self.nc, names, self.registry.inboxes_of, self.timers)
        speech = settings.speech
        self.voice_per_ip = UserQuota(self.nc.jetstream(), names.rate_bucket, speech.per_ip_per_minute)
        self.voice_per_user = UserQuota(self.nc.jetstream(), names.rate_bucket, speech.per_user_per_minute)
        self.keys = ChatKeys(self.nc.jetstream(), names.idempotency_bucket, settings.idempotency_window_seconds)
        self.budgets = Budgets(self.nc.jetstream(), names.budget_bucket, settings.budget)
        self.spent = SpentBook(self.nc.jetstream(), names.budget_bucket, settings.budget)
        self.book = PrivacyBook(self.nc.jetstream(), names, settings.privacy_default)
        self.path = ChatPath(self.quota, self.spent, self.keys, self.book, self.journal, self.relay)
        self.sockets = Sockets(settings, self.registry, self.book, self._open_session)
        self.erasures = Erasures(self.nc, names, settings.instance_id, self.registry, self.book, self.spent)
        self._debug_switch: Subscription | None = None
        self._service: Service | None = None

    def _open_session(self, identity: Identity, client_ip: str, outbox: Outbox, dialect: Dialect) -> Session:
        inbox = Inbox(identity.user_id, outbox, dialect, self.kept)
        if not identity.demo:  # runs once the socket has sent its welcome (no await before it)
            self.missed.connected(inbox)
        return Session(identity, client_ip, outbox, dialect, inbox, self.path, self.settings)

    async def start(self) -> None:
        settings, names = self.settings, self.settings.subjects
        await bus.connect(settings.nats, f"pam-gateway-{settings.instance_id}", self.nc)
        replicas = await jetstream.replicas(self.nc, names, settings.nats.replicas)
        await delivery.ensure_frames_stream(self.nc.jetstream(), names, settings.resume_window_seconds, replicas)
        await self.timers.ensure(replicas)
        await self.relay.start()
        await self.journal.start(replicas)
        for quota in (self.quota, self.voice_per_ip, self.voice_per_user):
            await quota.start(replicas)
        await self.keys.start(replicas)
        await self.budgets.start(replicas)
        await self.spent.start(self.tasks, replicas)
        await self.book.start(self.tasks, replicas)
        await self.erasures.start()
        await self.pushes.start()
        self._debug_switch = await debugging.listen(self.nc, names)
        self._service = await add_service(
            self.nc, name=names.gateway_service, version=__version__, metadata={"instance": settings.instance_id}
        )

    async def stop(self) -> None:
        if self._service is not None:
            await self._service.stop()
        if self._debug_switch is not None:
            await self._debug_switch.unsubscribe()
        for part in (self.erasures, self.pushes, self.quota, self.relay, self.missed):
            await part.stop()
        self.tasks.closing()
        await self.book.close()
        await self.spent.close()
        await self.tasks.stop()
        await self.journal.close()
        if self.nc.is_connected:
            await self.nc.drain()

    async def ready(self) -> dict[str, bool]:
        """Able to serve: NATS connected, the reply subscription receiving, every task alive."""
        nats_ok = self.nc.is_connected and not self.sockets.draining
        replies_ok = nats_ok and await self.relay.probe(PROBE_TIMEOUT_SECONDS)
        return {"nats": nats_ok, "reply_subscription": replies_ok, "background_tasks": self.tasks.healthy}

    async def instances(self, service: str, window: float) -> list[discovery.InstanceStats]:
        return await discovery.instances(self.nc, service, window) if self.nc.is_connected else []

    async def drain(self) -> None:
        """Deploy-friendly shutdown: warn every client, let answers finish, close with 1012."""
        self.sockets.draining = True
        sessions = self.registry.sessions
        log.info("draining %d sockets", len(sessions), extra={"marker": logs.CONNECTION})
        for socket in sessions:
            socket.send(
                Connection(
                    status="disconnected",
                    message="PAM is restarting; reconnecting…",
                    session_id=socket.id,
                    reason="server_restart",
                    timestamp=now_iso(),
                )
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.relay.idle.wait(), self.settings.shutdown_grace_seconds)
        await asyncio.gather(*(s.outbox.close(SERVICE_RESTART) for s in sessions))
