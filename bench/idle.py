"""Scenario 3, idle connections: 10,000 authenticated idle sockets on one gateway process.

Every socket must still answer a ping afterwards.  Reported: the gateway's resident
memory per connection (RSS with the sockets open, less RSS after one warm-up socket,
over the count).  Beside it, a bare uvicorn + Starlette WebSocket echo with compression
off, measured the same way.  Target: <= 30 KB (KiB) per connection.
With ``--profile`` the gateway is measured once more under tracemalloc, and the lines
holding the most Python memory are reported (``project.traced.top_allocations``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection

from bench import cli, results
from bench.frames import PING, is_pong
from bench.meters import rss_bytes
from bench.project import Project
from bench.server_options import ServerOptions, resolved
from bench.variants import TRACEMALLOC
from bench.wsload import close_sockets, open_sockets, raise_open_files_limit, run
from bench.yardsticks import Yardstick

SETTLE_SECONDS = 3.0
PING_TIMEOUT = 60.0
TARGET_KB = 30.0
ECHO_PING = "ping"


def answered(frame: str) -> bool:
    return is_pong(frame) or frame == ECHO_PING


async def _pinged(ws: ClientConnection, frame: str) -> bool:
    await ws.send(frame)
    while not answered(await ws.recv()):
        pass
    return True


async def ping_all(sockets: list[ClientConnection], frame: str) -> int:
    """How many sockets answer a ping, all asked at once, within PING_TIMEOUT."""
    answers = await asyncio.wait_for(
        asyncio.gather(*(_pinged(ws, frame) for ws in sockets), return_exceptions=True), PING_TIMEOUT
    )
    return sum(1 for answer in answers if answer is True)


async def warm_up(url: str, greeted: bool, frame: str) -> None:
    """One socket opened, pinged and closed, so the baseline includes every lazy import."""
    sockets = await open_sockets([url], greeted)
    await ping_all(sockets, frame)
    await close_sockets(sockets)
    await asyncio.sleep(0.5)


def _written(path: Path) -> list[dict[str, Any]] | None:
    try:
        return json.loads(path.read_text())
    except OSError:  # not written yet
        return None


async def allocations(pid: int, path: Path) -> list[dict[str, Any]]:
    """Ask a tracing gateway (``bench.variants``) for its top allocation sites, and wait for them."""
    os.kill(pid, signal.SIGUSR1)
    for _ in range(600):
        await asyncio.sleep(0.1)
        if (top := _written(path)) is not None:
            return top
    return []


async def hold(urls: list[str], greeted: bool, frame: str, pid: int, trace: Path | None = None) -> dict[str, Any]:
    await warm_up(urls[0], greeted, frame)
    baseline = rss_bytes(pid)
    started = time.monotonic()
    sockets = await open_sockets(urls, greeted, concurrency=200)
    connect_seconds = time.monotonic() - started
    try:
        await asyncio.sleep(SETTLE_SECONDS)
        loaded = rss_bytes(pid)
        top = await allocations(pid, trace) if trace else None
        started = time.monotonic()
        answered = await ping_all(sockets, frame)
        ping_seconds = time.monotonic() - started
    finally:
        await close_sockets(sockets)
    return {
        "sockets": len(urls),
        "answered_ping": answered,
        "rss_baseline_mb": round(baseline / 2**20, 1),
        "rss_loaded_mb": round(loaded / 2**20, 1),
        "kb_per_connection": round((loaded - baseline) / len(urls) / 1024, 1),
        "connect_per_s": round(len(urls) / connect_seconds),
        "ping_all_seconds": round(ping_seconds, 2),
        **({"top_allocations": top} if top is not None else {}),
    }


def measure_echo(options: ServerOptions, count: int) -> dict[str, Any]:
    with Yardstick("echo", "idle", options) as echo:
        return run(hold([echo.url] * count, False, ECHO_PING, echo.server.pid))


def measure_project(options: ServerOptions, count: int, trace: bool = False) -> dict[str, Any]:
    """With ``trace``, the gateway runs under tracemalloc (RSS grows with it: a profile, not a figure)."""
    path = results.RESULTS / "allocations-idle-gateway.json"
    path.unlink(missing_ok=True)
    env = {TRACEMALLOC: str(path)} if trace else {}
    with Project("idle", options, orchestrators=0, env=env) as project:
        urls = [project.ws_url(f"idle-{i}") for i in range(count)]
        return run(hold(urls, True, PING, project.gateway.pid, path if trace else None))


def checks(project: dict[str, Any], echo: dict[str, Any]) -> list[dict[str, Any]]:
    kb, echo_kb = project["kb_per_connection"], echo["kb_per_connection"]
    everyone = project["answered_ping"] == project["sockets"]
    versus = results.ratio(kb, echo_kb)
    return [
        results.check("KB per idle connection", kb, echo_kb, f"<= {TARGET_KB:g}", kb <= TARGET_KB, versus),
        results.check("sockets answering a ping", project["answered_ping"], echo["answered_ping"], "all", everyone),
    ]


def measure(options: ServerOptions, count: int, profile: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    echo = measure_echo(options, count)
    print(f"  echo: {echo}", flush=True)
    project = measure_project(options, count)
    print(f"  gateway: {project}", flush=True)
    if profile:
        project["traced"] = measure_project(options, count, trace=True)
    return project, echo


def main() -> None:
    parser = cli.parser(__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, help="idle sockets (default 10,000; 2,000 with --quick)")
    args = parser.parse_args()
    limit = raise_open_files_limit()
    count = args.sockets or (2_000 if args.quick else 10_000)
    if count + 200 > limit:
        raise SystemExit(f"open-files limit {limit} is too low for {count} sockets")
    options = cli.server_options(args)
    load_before = results.load_average()
    project, echo = measure(options, count, args.profile)
    path = results.write(
        args.name or "idle",
        {
            "scenario": "3",
            "title": f"{count:,} idle authenticated sockets on one gateway",
            "quick": args.quick,
            "options": {"label": options.label, **resolved(options)},
            "load_before": load_before,
            "load_after": results.load_average(),
            "project": project,
            "yardstick": echo,
            "checks": checks(project, echo),
        },
    )
    print(path)


if __name__ == "__main__":
    main()
