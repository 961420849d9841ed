"""Every PAM service instance's $SRV.STATS over NATS: who runs, which version, since when, how busy.

Uses NATS_URL and PAM_NATS_NAMESPACE. Exits 1 when NATS is unreachable or no instance answers.
"""

from __future__ import annotations

import argparse
import asyncio

from pam_shared import discovery
from pam_shared.discovery import InstanceStats
from pam_shared.logs import ERROR, OK
from pam_shared.settings import load_settings

from pam_cli import options
from pam_cli.console import say, since, table
from pam_cli.failure import Failure
from pam_cli.nats_link import connect

HEADERS = ("service", "instance", "version", "uptime", "requests", "errors")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--window",
        type=options.positive_float,
        default=0.5,
        help="seconds to collect replies (default %(default)g)",
    )


async def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    names = settings.subjects
    services = (names.gateway_service, names.orchestrator_service, names.persistence_service)
    nc = await connect(settings.nats)
    try:
        found = await asyncio.gather(*(discovery.instances(nc, service, args.window) for service in services))
    finally:
        await nc.close()
    rows = [_row(stats) for instances in found for stats in instances]
    if rows:
        print(table(HEADERS, rows), flush=True)
    for service, instances in zip(services, found, strict=True):
        say(OK if instances else ERROR, f"{service}: {len(instances)} answering")
    if not rows:
        raise Failure(f"no PAM service answered $SRV.STATS in namespace {settings.nats_namespace!r}")
    return 0


def _row(stats: InstanceStats) -> list[str]:
    return [stats.name, stats.instance, stats.version, since(stats.started), str(stats.requests), str(stats.errors)]
