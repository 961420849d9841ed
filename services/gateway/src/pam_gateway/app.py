"""The gateway application: its routes, and the NATS connection they share."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator

from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.micro import add_service
from nats.micro.service import Service
from pam_shared import __version__, bus, debugging, delivery, logs
from pam_shared.background import Tasks
from pam_shared.journal import Journal
from pam_shared.protocol import Connection
from pam_shared.settings import Settings
from pam_shared.subjects import user_token
from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from pam_gateway import health, history_api, page, session
from pam_gateway.pushes import Pushes
from pam_gateway.quota import UserQuota
from pam_gateway.ratelimit import AttemptsPerMinute, SocketsPerUser
from pam_gateway.relay import Relay

log = logging.getLogger("pam.gateway")


class Gateway:
    """State shared by every socket of one gateway process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started = time.time()
        self.draining = False
        self.by_user: dict[str, set[session.Session]] = defaultdict(set)
        self.attempts = AttemptsPerMinute(settings.ip_connects_per_minute)
        self.user_sockets = SocketsPerUser(settings.max_sockets_per_user)
        self.nc: Client | None = None
        self.tasks = Tasks()
        self.relay: Relay
        self.journal: Journal
        self.quota: UserQuota
        self.pushes: Pushes
        self.js: JetStreamContext
        self.debug_switch: Subscription
        self.service: Service

    async def start(self) -> None:
        settings, names = self.settings, self.settings.subjects
        self.nc = await bus.connect(settings.nats_url, f"pam-gateway-{settings.instance_id}")
        self.relay = Relay(self.nc, names, settings.instance_id, settings.reply_timeout_seconds, self.tasks)
        self.journal = Journal.for_service(self.nc, settings, "gateway")
        self.quota = UserQuota(self.nc.jetstream(), names.rate_bucket, settings.user_messages_per_minute)
        self.pushes = Pushes(self.nc, names, self.sessions_of)
        self.js = self.nc.jetstream()
        await delivery.ensure_frames_stream(self.js, names, settings.resume_window_seconds)
        for part in (self.relay, self.journal, self.quota, self.pushes):
            await part.start()
        self.debug_switch = await debugging.listen(self.nc, names)
        self.service = await add_service(
            self.nc, name=names.gateway_service, version=__version__, metadata={"instance": settings.instance_id}
        )

    async def stop(self) -> None:
        await self.service.stop()
        await self.debug_switch.unsubscribe()
        for part in (self.pushes, self.quota, self.relay):
            await part.stop()
        await self.tasks.stop()
        await self.journal.close()
        if self.nc is not None:
            await self.nc.drain()

    @property
    def sessions(self) -> list[session.Session]:
        return [s for sessions in self.by_user.values() for s in sessions]

    def add(self, socket: session.Session) -> None:
        self.by_user[user_token(socket.identity.user_id)].add(socket)

    def remove(self, socket: session.Session) -> None:
        key = user_token(socket.identity.user_id)
        self.by_user[key].discard(socket)
        if not self.by_user[key]:
            del self.by_user[key]

    def sessions_of(self, user_key: str) -> list[session.Session]:
        return list(self.by_user.get(user_key, ()))

    async def drain(self) -> None:
        """Deploy-friendly shutdown: warn every client, let answers finish, close with 1012."""
        self.draining = True
        sessions = self.sessions
        log.info("draining %d sockets", len(sessions), extra={"marker": logs.CONNECTION})
        for socket in sessions:
            socket.send(
                Connection(
                    status="disconnected",
                    message="PAM is restarting; reconnecting…",
                    session_id=socket.id,
                    reason="server_restart",
                    timestamp=session.now_iso(),
                )
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.relay.idle.wait(), self.settings.shutdown_grace_seconds)
        await asyncio.gather(*(s.outbox.close(session.SERVICE_RESTART) for s in sessions))


def create_app(settings: Settings) -> Starlette:
    gateway = Gateway(settings)

    async def user_socket(websocket: WebSocket) -> None:
        await session.serve(gateway, websocket, websocket.path_params["user_id"])

    async def token_socket(websocket: WebSocket) -> None:
        await session.serve(gateway, websocket, None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    routes = [
        WebSocketRoute("/ws/{user_id}", user_socket),
        WebSocketRoute("/api/v1/pam/ws", token_socket),
        Route("/api/health", health.liveness),
        Route("/api/health/detailed", health.detailed(gateway)),
        Route("/api/health/ready", health.readiness(gateway)),
        *history_api.routes(gateway),
        Route("/", page.index),
        Mount("/static", page.files, name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gateway = gateway
    return app
