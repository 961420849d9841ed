"""The gateway application: its routes, and the NATS connection they share."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from nats.aio.client import Client
from pam_shared import bus
from pam_shared.journal import Journal
from pam_shared.settings import Settings
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from pam_gateway import health, session
from pam_gateway.relay import Relay


class Gateway:
    """State shared by every socket of one gateway process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started = time.time()
        self.sessions: set[session.Session] = set()
        self.nc: Client | None = None
        self.relay: Relay
        self.journal: Journal

    async def start(self) -> None:
        self.nc = await bus.connect(self.settings.nats_url, f"pam-gateway-{self.settings.instance_id}")
        self.relay = Relay(
            self.nc, self.settings.subjects, self.settings.instance_id, self.settings.reply_timeout_seconds
        )
        await self.relay.start()
        self.journal = Journal(self.nc, self.settings.subjects)
        await self.journal.start()

    async def stop(self) -> None:
        await self.relay.stop()
        await self.journal.close()
        if self.nc is not None:
            await self.nc.drain()


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
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gateway = gateway
    return app
