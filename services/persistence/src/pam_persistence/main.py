"""``pam-persistence``: the only writer of PostgreSQL, fed through NATS JetStream.

It consumes the events stream through the durable pull consumer every instance shares,
deletes what is older than ``PAM_RETENTION_DAYS`` (``retention``), and answers, as the
``nats.micro`` service ``<namespace>-persistence``:

    <namespace>.persistence.history        the last turns of a conversation (orchestrator)
    <namespace>.persistence.conversations  a user's conversations (gateway read API)
    <namespace>.persistence.messages       one conversation's messages (gateway read API)
    <namespace>.persistence.analytics      activity summary (gateway read API, admins)
    <namespace>.persistence.export         a page of everything stored about a user (gateway export)
    <namespace>.persistence.privacy        a user's privacy settings, read or changed (gateway)
    <namespace>.persistence.delete_conversation  erase one of a user's conversations (gateway)
    <namespace>.privacy.erase              erase a user everywhere (gateway, operators' pipelines)
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import asyncpg
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.micro import add_service
from nats.micro.service import Service
from pam_shared import __version__, bus, debugging, jetstream, lifecycle, logs, privacy
from pam_shared.background import Tasks
from pam_shared.journal import ensure_stream
from pam_shared.settings import (
    AuthSettings,
    ConfigError,
    PersistenceSettings,
    load_auth_settings,
    load_persistence_settings,
)

from pam_persistence import consent, db
from pam_persistence.answers import Answers
from pam_persistence.conversations import Activity
from pam_persistence.erasure import Eraser
from pam_persistence.retention import Retention
from pam_persistence.store import Keeping
from pam_persistence.writer import Writer

log = logging.getLogger("pam.persistence")

POOL_CLOSE_TIMEOUT_SECONDS = 5.0


class Persistence:
    def __init__(self, settings: PersistenceSettings, stop: asyncio.Event) -> None:
        self.settings = settings
        self.tasks = Tasks(on_death=lambda _: stop.set())  # a dead writer: exit, and be restarted
        self.names = settings.subjects
        gap, resolution = settings.conversation_idle_minutes * 60, settings.activity_resolution_seconds
        self.activity = Activity(timedelta(seconds=gap), timedelta(seconds=resolution))
        self.nc: Client | None = None
        self.pool: asyncpg.Pool | None = None
        self.service: Service | None = None
        self.writer: Writer | None = None
        self.retention: Retention | None = None
        self.debug_switch: Subscription | None = None

    async def start(self) -> None:
        settings, names = self.settings, self.names
        self.nc = await bus.connect(settings.nats, f"pam-persistence-{settings.instance_id}")
        js = self.nc.jetstream()
        replicas = await jetstream.replicas(self.nc, names, settings.nats.replicas)
        await ensure_stream(js, names, replicas)
        self.pool = await db.open_pool(settings.database_url, settings.db_pool_size)
        salt = await consent.salt_of(self.pool)
        keeping = Keeping(salt, settings.privacy_default)
        batching = settings.persist_batch_size, settings.persist_flush_ms
        self.writer = Writer(self.nc, js, self.pool, names, *batching, self.activity, keeping)
        await self.writer.start(self.tasks, replicas)
        self.retention = Retention(self.pool, settings.retention)
        self.retention.start(self.tasks)
        answers = Answers(self.pool, self.activity, self.nc.max_payload)
        mirror = await jetstream.ensure_bucket(js, privacy.bucket_config(names, replicas))
        choices = consent.Choices(self.pool, mirror, settings.privacy_default)
        eraser = Eraser(self.nc, self.pool, names, _token_checks(), salt)
        self.service = await add_service(
            self.nc,
            name=names.persistence_service,
            version=__version__,
            description="PAM persistence: events into PostgreSQL, history and read API out",
            metadata={"instance": settings.instance_id},
        )
        for name, subject, handler in (
            ("history", names.history, answers.history),
            ("conversations", names.conversation_list, answers.conversations),
            ("messages", names.conversation_messages, answers.messages),
            ("analytics", names.analytics_summary, answers.analytics),
            ("export", names.export, answers.export),
            ("privacy", names.privacy, choices.handle),
            ("erase", names.erase, eraser.on_erase),
            ("delete-conversation", names.delete_conversation, eraser.on_conversation),
        ):
            await self.service.add_endpoint(
                name=name, subject=subject, queue_group=names.persistence_service, handler=handler
            )
        await self.nc.flush()  # the server has our subscriptions before we say we are ready
        self.debug_switch = await debugging.listen(self.nc, names)
        log.info(
            "ready: consuming %s as %s (batch %d, flush %g ms)",
            names.events_stream,
            names.persistence_consumer,
            settings.persist_batch_size,
            settings.persist_flush_ms,
            extra={"marker": logs.OK},
        )

    async def drain(self) -> None:
        """Answer no more requests, finish the batch in hand, then leave NATS and the database."""
        self.tasks.closing()
        if self.service is not None:
            await self.service.stop()
        if self.writer is not None:
            await self.writer.stop()
        if self.retention is not None:
            await self.retention.stop()
        await self.tasks.stop()
        if self.nc is not None:
            await self.nc.drain()
        if self.pool is not None:
            try:
                await asyncio.wait_for(self.pool.close(), POOL_CLOSE_TIMEOUT_SECONDS)
            except TimeoutError:
                self.pool.terminate()


def _token_checks() -> AuthSettings | None:
    """How erasure requests' tokens are checked; None (every one refused) when persistence was
    given no JWT_SECRET or SUPABASE_URL in production."""
    try:
        return load_auth_settings()
    except ConfigError as exc:
        log.warning("erasure requests will be refused: %s", exc)
        return None


def main() -> None:
    settings = lifecycle.configure("persistence", load_persistence_settings)
    stop = asyncio.Event()
    persistence = Persistence(settings, stop)
    lifecycle.run(persistence, stop)
    if not persistence.tasks.healthy:
        raise SystemExit(1)
