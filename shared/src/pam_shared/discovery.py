"""Who is running: every instance of a service, from ``nats.micro``'s ``$SRV.STATS``."""

from __future__ import annotations

import msgspec
from nats.aio.client import Client

from pam_shared import bus


class EndpointHealth(msgspec.Struct):
    """One model endpoint as an orchestrator sees it: its circuit breaker's state."""

    name: str
    model: str
    state: str
    """closed (in use), open (skipped until ``retry_in_seconds``), half_open (one chat probes it)."""
    failures: int
    retry_in_seconds: float


class ServiceData(msgspec.Struct):
    """What a service adds to its ``$SRV.STATS`` endpoint stats (orchestrators: their model endpoints)."""

    models: list[EndpointHealth] = []


class EndpointStats(msgspec.Struct):
    num_requests: int = 0
    num_errors: int = 0
    data: ServiceData | None = None


class InstanceStats(msgspec.Struct):
    """The part of a ``$SRV.STATS`` reply that health views and ``pam stats`` show."""

    id: str
    name: str
    version: str
    started: str
    endpoints: list[EndpointStats] = []
    metadata: dict[str, str] | None = None

    @property
    def instance(self) -> str:
        """Our own instance id when the service gave one, else the NATS service id."""
        return (self.metadata or {}).get("instance") or self.id

    @property
    def requests(self) -> int:
        return sum(e.num_requests for e in self.endpoints)

    @property
    def errors(self) -> int:
        return sum(e.num_errors for e in self.endpoints)

    @property
    def models(self) -> list[EndpointHealth]:
        return [model for e in self.endpoints if e.data is not None for model in e.data.models]


_decoder = msgspec.json.Decoder(InstanceStats)


async def instances(nc: Client, service: str, window: float) -> list[InstanceStats]:
    """Every instance of ``service`` that answers within ``window`` seconds, by instance id."""
    found = []
    for reply in await bus.gather_replies(nc, f"$SRV.STATS.{service}", window):
        try:
            found.append(_decoder.decode(reply.data))
        except msgspec.DecodeError:
            continue
    return sorted(found, key=lambda stats: stats.instance)
