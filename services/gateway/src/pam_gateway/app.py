"""The gateway application: its routes, and the lifespan that starts and stops the gateway."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from pam_shared.settings import GatewaySettings
from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from pam_gateway import page, read_api
from pam_gateway.gateway import Gateway
from pam_gateway.health import Health


def create_app(settings: GatewaySettings) -> Starlette:
    gateway = Gateway(settings)
    health = Health(gateway)

    async def user_socket(websocket: WebSocket) -> None:
        await gateway.sockets.serve(websocket, websocket.path_params["user_id"])

    async def token_socket(websocket: WebSocket) -> None:
        await gateway.sockets.serve(websocket, None)

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
        Route("/api/health/detailed", health.detailed),
        Route("/api/health/ready", health.readiness),
        *read_api.routes(gateway.nc, settings),
        Route("/", page.index),
        Mount("/static", page.files, name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gateway = gateway
    return app
