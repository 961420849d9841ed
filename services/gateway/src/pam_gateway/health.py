"""Health endpoints: liveness without dependencies, and a detailed view of the whole path."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pam_shared import __version__, discovery
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from pam_gateway.app import Gateway

DISCOVERY_WINDOW_SECONDS = 0.25
PROBE_TIMEOUT_SECONDS = 1.0


async def liveness(request: Request) -> Response:
    return JSONResponse({"status": "ok", "service": "pam-gateway", "version": __version__})


def readiness(gateway: Gateway) -> Callable[[Request], Awaitable[Response]]:
    """Ready means able to serve: NATS connected, our reply subscription still receiving,
    and every background task alive."""

    async def endpoint(request: Request) -> Response:
        nats_ok = gateway.nc is not None and gateway.nc.is_connected and not gateway.draining
        replies_ok = nats_ok and await gateway.relay.probe(PROBE_TIMEOUT_SECONDS)
        tasks_ok = gateway.tasks.healthy
        ready = nats_ok and replies_ok and tasks_ok
        body = {
            "status": "ready" if ready else "not_ready",
            "nats": nats_ok,
            "reply_subscription": replies_ok,
            "background_tasks": tasks_ok,
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    return endpoint


def detailed(gateway: Gateway) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        names = gateway.settings.subjects
        nats_ok = gateway.nc is not None and gateway.nc.is_connected
        kinds = {"orchestrators": names.orchestrator_service, "persistence": names.persistence_service}
        found = await asyncio.gather(*(_instances(gateway, service) for service in kinds.values())) if nats_ok else []
        instances = dict(zip(kinds, found or ([], []), strict=True))
        healthy = nats_ok and all(instances.values())
        sessions = gateway.sessions
        demo = sum(1 for s in sessions if s.identity.demo)
        body = {
            "status": "healthy" if healthy else "degraded",
            "service": "pam-gateway",
            "version": __version__,
            "instance": gateway.settings.instance_id,
            "uptime_seconds": round(time.time() - gateway.started, 1),
            "nats": {"connected": nats_ok, "url": _without_credentials(gateway.settings.nats_url)},
            "connections": {"open": len(sessions), "live": len(sessions) - demo, "demo": demo},
            **instances,
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

    return endpoint


async def _instances(gateway: Gateway, service: str) -> list[dict[str, object]]:
    assert gateway.nc is not None
    found = await discovery.instances(gateway.nc, service, DISCOVERY_WINDOW_SECONDS)
    return [
        {
            "id": stats.id,
            "version": stats.version,
            "started": stats.started,
            "requests": stats.requests,
            "errors": stats.errors,
            "metadata": stats.metadata or {},
        }
        for stats in found
    ]


def _without_credentials(url: str) -> str:
    return ",".join(part.split("@")[-1] for part in url.split(","))
