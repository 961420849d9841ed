"""``pam-orchestrator``: answer chats from the queue group until told to stop."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import uvloop
from pam_shared import logs
from pam_shared.metrics_server import serve_metrics
from pam_shared.settings import ConfigError, load_settings

from pam_orchestrator.service import Orchestrator

log = logging.getLogger("pam.orchestrator")


async def run() -> None:
    settings = load_settings()
    logs.setup_logging("orchestrator", settings.instance_id, settings.log_level, settings.is_production)
    serve_metrics(settings.metrics_port, settings.metrics_host)
    orchestrator = Orchestrator(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await orchestrator.start()
    await stop.wait()
    log.info("stopping", extra={"marker": logs.CONNECTION})
    await orchestrator.drain()


def main() -> None:
    try:
        uvloop.run(run())
    except ConfigError as exc:
        print(f"pam-orchestrator: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
