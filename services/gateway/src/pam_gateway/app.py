"""The gateway application: its routes, and the lifespan that starts and stops the gateway."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from pam_shared.settings import GatewaySettings
from starlette.applications import Starlette
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from pam_gateway import origins, page, read_api, rest_chat
from pam_gateway.export import Exports
from pam_gateway.gateway import Gateway
from pam_gateway.health import Health
from pam_gateway.privacy_routes import PrivacyRoutes
from pam_gateway.rest_chat import RestChat
from pam_gateway.timer_routes import TimerRoutes
from pam_gateway.voice import Voice
from pam_gateway.wheels import WheelsDialect


def create_app(settings: GatewaySettings) -> Starlette:
    gateway = Gateway(settings)
    health = Health(gateway)
    rest = RestChat(gateway.nc, settings, gateway.path, gateway.kept)
    voice = Voice(gateway.nc, settings, gateway.voice_per_ip, gateway.voice_per_user)
    api = read_api.ReadApi(gateway.nc, settings, gateway.budgets)

    async def user_socket(websocket: WebSocket) -> None:
        await gateway.sockets.serve(websocket, websocket.path_params["user_id"])

    async def token_socket(websocket: WebSocket) -> None:
        await gateway.sockets.serve(websocket, None)

    async def wheels_socket(websocket: WebSocket) -> None:
        await gateway.sockets.serve(websocket, websocket.path_params["user_id"], WheelsDialect())

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
        # The shipped WHEELS WINS frontend's paths (pam_shared.wheels), REST fallback included.
        WebSocketRoute("/api/v1/pam/ws/{user_id}", wheels_socket),
        WebSocketRoute("/api/v1/pam-simple/ws/{user_id}", wheels_socket),
        Route("/api/v1/pam/chat", rest.chat, methods=["POST"]),
        Route("/api/v1/pam-simple/chat", rest.chat, methods=["POST"]),
        Route("/api/v1/chats/{message_id}/cancel", rest.cancel, methods=["POST"]),
        Route("/api/v1/pam/voice", voice.speak, methods=["POST"]),
        Route("/api/v1/pam-simple/voice", voice.speak, methods=["POST"]),
        Route("/api/v1/pam/health", rest_chat.health),
        Route("/api/v1/pam-simple/health", rest_chat.health),
        Route("/api/health", health.liveness),
        Route("/api/health/detailed", health.detailed),
        Route("/api/health/ready", health.readiness),
        *read_api.routes(api),
        *PrivacyRoutes(api, gateway.book).routes(),
        *Exports(api, gateway.timers).routes(),
        *TimerRoutes(settings, gateway.timers).routes(),
        Route("/", page.index),
        Mount("/static", page.files, name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[origins.cors(settings.allowed_origins)])
    app.state.gateway = gateway
    return app
