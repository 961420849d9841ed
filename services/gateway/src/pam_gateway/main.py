"""``pam-gateway``: serve the WebSocket gateway with uvicorn, configured from the environment."""

from __future__ import annotations

import logging
import socket

import uvicorn
from pam_shared import lifecycle, logs
from pam_shared.settings import load_gateway_settings

from pam_gateway.app import create_app
from pam_gateway.gateway import Gateway
from pam_gateway.request_limits import BoundedHttp, FlushingWebSocket

log = logging.getLogger("pam.gateway")

HARD_SIZE_FACTOR = 4
"""Frames up to this many times the message limit get an error frame; larger ones close with 1009."""


def main() -> None:
    settings = lifecycle.configure("gateway", load_gateway_settings)
    log.info(
        "starting on http://%s:%d (%s, demo mode %s)",
        settings.gateway_host,
        settings.gateway_port,
        settings.environment,
        "on" if settings.auth.demo_mode else "off",
        extra={"marker": logs.CONNECTION},
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        http=BoundedHttp,  # a request head too large or too slow is refused at once
        ws=FlushingWebSocket,
        ws_max_size=settings.max_message_bytes * HARD_SIZE_FACTOR,
        ws_per_message_deflate=False,
        server_header=False,
        proxy_headers=bool(settings.trusted_proxies),  # client IPs from X-Forwarded-For only from these
        forwarded_allow_ips=list(settings.trusted_proxies),
    )
    DrainingServer(config, app.state.gateway).run()


class DrainingServer(uvicorn.Server):
    """uvicorn, but on SIGTERM the gateway drains its sockets before uvicorn closes them."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
        self.gateway = gateway

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting before anything else
        await self.gateway.drain()
        await super().shutdown(sockets)
