"""Health endpoints: liveness without dependencies, readiness, and a detailed view of the path."""

from __future__ import annotations

import asyncio
import time

import msgspec
from pam_shared import __version__
from pam_shared.discovery import InstanceStats
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pam_gateway.gateway import Gateway

DISCOVERY_WINDOW_SECONDS = 0.25


class Health:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def liveness(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": "pam-gateway", "version": __version__})

    async def readiness(self, request: Request) -> Response:
        checks = await self.gateway.ready()
        ready = all(checks.values())
        return JSONResponse({"status": "ready" if ready else "not_ready", **checks}, status_code=200 if ready else 503)

    async def detailed(self, request: Request) -> Response:
        gateway = self.gateway
        names, nats_ok = gateway.settings.subjects, gateway.nc.is_connected
        kinds = {"orchestrators": names.orchestrator_service, "persistence": names.persistence_service}
        found = await asyncio.gather(*(gateway.instances(s, DISCOVERY_WINDOW_SECONDS) for s in kinds.values()))
        instances = {kind: [_instance(stats) for stats in each] for kind, each in zip(kinds, found, strict=True)}
        models_down = any(_models_down(stats) for stats in found[0])
        healthy = nats_ok and all(instances.values()) and not models_down
        sessions = gateway.registry.sessions
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


def _instance(stats: InstanceStats) -> dict[str, object]:
    return {
        "id": stats.id,
        "version": stats.version,
        "started": stats.started,
        "requests": stats.requests,
        "errors": stats.errors,
        "metadata": stats.metadata or {},
        "models": msgspec.to_builtins(stats.models),
    }


def _models_down(stats: InstanceStats) -> bool:
    """An orchestrator with model endpoints, every one of them open: its chats all fail."""
    return bool(stats.models) and all(model.state == "open" for model in stats.models)


def _without_credentials(url: str) -> str:
    return ",".join(part.split("@")[-1] for part in url.split(","))
