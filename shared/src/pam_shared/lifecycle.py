"""How every service starts and stops: settings, logs and metrics, then run until signalled.

A bad setting is one line on stderr (in the log when only NATS can tell) and exit status 2.
SIGTERM or SIGINT, or the service itself setting its ``stop`` event, drains it; a signal
during start-up (still waiting for NATS or the database, say) abandons the start instead
of waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from typing import Protocol, TypeVar

import uvloop

from pam_shared import logs
from pam_shared.metrics_server import serve_metrics
from pam_shared.settings import ConfigError, Settings

log = logging.getLogger("pam.lifecycle")

S = TypeVar("S", bound=Settings)


class Service(Protocol):
    async def start(self) -> None: ...

    async def drain(self) -> None: ...


def configure(service: str, load: Callable[[], S]) -> S:
    """Read the settings, then set up logging and the metrics port as every service does."""
    try:
        settings = load()
    except ConfigError as exc:
        print(f"pam-{service}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logs.setup_logging(service, settings.instance_id, settings.log_level, settings.is_production)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    return settings


def run(service: Service, stop: asyncio.Event | None = None) -> None:
    """Start ``service`` on uvloop and drain it when told to stop."""
    try:
        uvloop.run(_run(service, stop or asyncio.Event()))
    except ConfigError as exc:  # one found only once connected: PAM_JETSTREAM_REPLICAS against the cluster
        log.error("configuration error: %s", exc, extra={"marker": logs.ERROR})
        raise SystemExit(2) from None


async def _run(service: Service, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.create_task(service.start())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
    elif starting.exception() is not None:
        stopping.cancel()
        raise starting.exception()  # type: ignore[misc]
    await stopping
    log.info("stopping", extra={"marker": logs.CONNECTION})
    await service.drain()
