"""Every PAM service instance's $SRV.STATS over NATS: who runs, which version, since when, how busy.

Uses NATS_URL and PAM_NATS_NAMESPACE. Exits 1 when NATS is unreachable or no instance answers.
"""

from __future__ import annotations

import argparse
import asyncio

import msgspec
from nats.aio.client import Client
from pam_shared import bus
from pam_shared.logs import ERROR, OK
from pam_shared.settings import load_settings

from pam_cli import options
from pam_cli.console import say, since, table
from pam_cli.failure import Failure
from pam_cli.nats_link import connect

HEADERS = ("service", "instance", "version", "uptime", "requests", "errors")


class EndpointStats(msgspec.Struct):
    num_requests: int = 0
    num_errors: int = 0


class InstanceStats(msgspec.Struct):
    """The part of a ``nats.micro`` stats reply the table shows."""

    id: str
    name: str
    version: str
    started: str
    endpoints: list[EndpointStats] = []
    metadata: dict[str, str] | None = None


_decoder = msgspec.json.Decoder(InstanceStats)


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
    nc = await connect(settings.nats_url)
    try:
        found = await asyncio.gather(*(collect(nc, service, args.window) for service in services))
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


async def collect(nc: Client, service: str, window: float) -> list[InstanceStats]:
    """Every instance of ``service`` that answers within the window, sorted by instance."""
    replies = await bus.gather_replies(nc, f"$SRV.STATS.{service}", window)
    instances = []
    for reply in replies:
        try:
            instances.append(_decoder.decode(reply.data))
        except msgspec.DecodeError:
            continue
    return sorted(instances, key=_instance)


def _instance(stats: InstanceStats) -> str:
    return (stats.metadata or {}).get("instance") or stats.id


def _row(stats: InstanceStats) -> list[str]:
    requests = sum(e.num_requests for e in stats.endpoints)
    errors = sum(e.num_errors for e in stats.endpoints)
    return [stats.name, _instance(stats), stats.version, since(stats.started), str(requests), str(errors)]
