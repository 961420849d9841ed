"""Ask the gateway how it is: the seed's `curl /api/health` and `/api/health/detailed`, read for you.

Exits 1 when the gateway is unreachable or reports itself degraded.
"""

from __future__ import annotations

import argparse
from typing import Any

import httpx
from pam_shared.logs import CONNECTION, ERROR, OK

from pam_cli import options
from pam_cli.console import duration, say, since, table
from pam_cli.failure import Failure

TIMEOUT_SECONDS = 5.0
INSTANCE_HEADERS = ("instance", "version", "uptime", "requests", "errors")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_url(parser)
    parser.add_argument("--detailed", action="store_true", help="NATS, open sockets and every service instance")


async def run(args: argparse.Namespace) -> int:
    url = args.url + ("/api/health/detailed" if args.detailed else "/api/health")
    body = await fetch(url)
    if args.detailed:
        show_detailed(url, body)
    elif body.get("status") != "ok":
        raise Failure(f"{url} says {body.get('status')!r}")
    gateway = f"{body.get('service', 'gateway')} {body.get('version', '')}".strip()
    say(OK, f"{gateway} at {args.url} is {body.get('status')}")
    return 0


async def fetch(url: str) -> dict[str, Any]:
    """GET a health endpoint; 503 still carries the body that says what is wrong."""
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as http:
            response = await http.get(url)
    except httpx.TimeoutException:
        raise Failure(f"backend unreachable: {url} did not answer in {TIMEOUT_SECONDS:g} s") from None
    except httpx.HTTPError as exc:
        raise Failure(f"backend unreachable at {url} ({exc or type(exc).__name__})") from None
    if response.status_code not in (200, 503):
        raise Failure(f"{url} answered HTTP {response.status_code}; is --url a PAM gateway?")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise Failure(f"{url} did not answer with a JSON object; is --url a PAM gateway?")
    return body


def show_detailed(url: str, body: dict[str, Any]) -> None:
    """Print each part of the detailed view, then fail with every reason it is degraded."""
    uptime = duration(float(body.get("uptime_seconds", 0)))
    say(CONNECTION, f"{body.get('service')} {body.get('version')}, instance {body.get('instance')}, up {uptime}")
    nats = body.get("nats", {})
    say(CONNECTION, f"NATS {'connected' if nats.get('connected') else 'DISCONNECTED'} ({nats.get('url')})")
    sockets = body.get("connections", {})
    say(CONNECTION, f"sockets open: {sockets.get('open')} ({sockets.get('live')} live, {sockets.get('demo')} demo)")
    for kind, instances in _instance_lists(body):
        say(OK if instances else ERROR, f"{kind}: {len(instances)} answering")
        if instances:
            print(_indent(table(INSTANCE_HEADERS, [_row(i) for i in instances])), flush=True)
    if body.get("status") != "healthy":
        raise Failure(f"{url} is degraded: {'; '.join(_reasons(body))}")


def _instance_lists(body: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Every list of service instances in the body (orchestrators, and any kind added later)."""
    return [(key, value) for key, value in body.items() if isinstance(value, list)]


def _reasons(body: dict[str, Any]) -> list[str]:
    reasons = [] if body.get("nats", {}).get("connected") else ["NATS disconnected"]
    for kind, instances in _instance_lists(body):
        if not instances:
            code = " (orchestrator_unavailable)" if kind == "orchestrators" else ""
            reasons.append(f"no {kind} answering{code}")
    return reasons or [f"status {body.get('status')!r}"]


def _row(instance: dict[str, Any]) -> list[str]:
    name = (instance.get("metadata") or {}).get("instance") or instance.get("id", "?")
    started = instance.get("started")
    uptime = since(started) if isinstance(started, str) else "?"
    return [str(name), str(instance.get("version")), uptime, str(instance.get("requests")), str(instance.get("errors"))]


def _indent(text: str) -> str:
    return "\n".join(f"   {line}" for line in text.splitlines())
