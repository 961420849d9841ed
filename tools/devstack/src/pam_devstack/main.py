"""``pam-stack``: one gateway, two orchestrators and persistence, on NATS and PostgreSQL, until Ctrl-C.

Configured by the same environment variables as the services (``NATS_URL``,
``DATABASE_URL``, ``PAM_GATEWAY_PORT``, ``OPENAI_API_KEY`` ...), plus ``PAM_DATA_DIR``
for where embedded servers keep their data (default ``.pam/`` beside ``.venv/``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable
from pathlib import Path

from pam_shared.auth import mint_token
from pam_shared.settings import ConfigError, GatewaySettings, load_gateway_settings

from pam_devstack.backing import Backing, StackError, resolve
from pam_devstack.children import Child
from pam_devstack.console import Console
from pam_devstack.embedded import EmbeddedError, ServerProcess, free_port, reachable

BIN = Path(sys.executable).parent
ORCHESTRATORS = 2
READY_TIMEOUT_SECONDS = 30.0
DEV_USER = "dev-user"
DEV_TOKEN_TTL_SECONDS = 24 * 3600


def data_dir() -> Path:
    return Path(os.environ.get("PAM_DATA_DIR") or Path(sys.prefix).parent / ".pam").resolve()


def main() -> None:
    try:
        settings = load_gateway_settings()
    except ConfigError as exc:
        print(f"pam-stack: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    names = ["gateway", *(f"orchestrator-{i}" for i in range(1, ORCHESTRATORS + 1)), "persistence"]
    console = Console(names)
    servers: list[ServerProcess] = []
    code = 0
    try:
        console.say("🔌", "starting NATS and PostgreSQL")
        backing = resolve(os.environ, data_dir(), servers)
        code = asyncio.run(supervise(backing, settings, console))
    except (StackError, EmbeddedError) as exc:
        console.say("❌", str(exc))
        code = 1
    except KeyboardInterrupt:
        code = 130
    finally:
        for server in reversed(servers):
            server.stop()
    console.say("✅", "stopped")
    raise SystemExit(code)


async def supervise(backing: Backing, settings: GatewaySettings, console: Console) -> int:
    """Start the services, wait for Ctrl-C (or a service dying), stop them all."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    port = gateway_port(settings, console)
    tiers = services(backing, port, console)
    try:
        for tier in tiers:
            await asyncio.gather(*(child.start() for child in tier))
        if await until_stopped(wait_ready(tiers, console), stop):
            banner(console, backing, settings, port)
            await until_stopped(first_exit([child for tier in tiers[1:] for child in tier], console), stop)
        return 0 if stop.is_set() else 1
    finally:
        console.say("🔌", "stopping")
        for tier in reversed(tiers):
            await asyncio.gather(*(child.stop() for child in tier))


def services(backing: Backing, port: int, console: Console) -> list[list[Child]]:
    """The children in start order: persistence (optional), the orchestrators, the gateway."""
    env = {**os.environ, "NATS_URL": backing.nats_url, "DATABASE_URL": backing.database_url, "PYTHONUNBUFFERED": "1"}
    persistence = optional_persistence({**env, "PAM_METRICS_PORT": str(free_port())}, console)
    workers = [
        Child(
            f"orchestrator-{i}",
            [str(BIN / "pam-orchestrator")],
            {**env, "PAM_METRICS_PORT": str(free_port())},  # each prints where its metrics are
            "ready: serving",
            console,
        )
        for i in range(1, ORCHESTRATORS + 1)
    ]
    gateway_env = {**env, "PAM_GATEWAY_PORT": str(port), "PAM_METRICS_PORT": str(free_port())}
    gateway = Child("gateway", [str(BIN / "pam-gateway")], gateway_env, "Uvicorn running on", console)
    return [[persistence] if persistence else [], workers, [gateway]]


async def until_stopped(work: Awaitable[bool], stop: asyncio.Event) -> bool:
    """Run ``work`` unless Ctrl-C comes first; its result, or False when stopped."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not task.done():
        task.cancel()
        return False
    return task.result()


async def wait_ready(tiers: list[list[Child]], console: Console) -> bool:
    """True when every essential service is ready; persistence may fail without stopping the stack."""
    persistence, *essential = tiers
    for child in persistence:
        if not await child.wait_ready(READY_TIMEOUT_SECONDS):
            console.say("❌", "persistence did not start: chats work, but nothing is stored")
    for tier in essential:
        for child in tier:
            if not await child.wait_ready(READY_TIMEOUT_SECONDS):
                console.say("❌", f"{child.name} did not start (see its lines above)")
                return False
    return True


async def first_exit(children: list[Child], console: Console) -> bool:
    """Wait until an essential service exits on its own; that stops the stack."""
    exits = {asyncio.ensure_future(child.wait_exit()): child for child in children}
    try:
        done, _ = await asyncio.wait(exits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in exits:
            task.cancel()
    child = exits[done.pop()]
    console.say("❌", f"{child.name} exited with code {child.proc.returncode if child.proc else '?'}; stopping")
    return False


def optional_persistence(env: dict[str, str], console: Console) -> Child | None:
    executable = BIN / "pam-persistence"
    if not executable.exists():
        console.say("❌", "pam-persistence is not installed: chats work, but nothing is stored")
        return None
    return Child("persistence", [str(executable)], env, "ready: consuming", console)


def gateway_port(settings: GatewaySettings, console: Console) -> int:
    """The configured port; a free one when that is 0, or when none was configured and 8000 is taken."""
    port = settings.gateway_port
    if port == 0:
        return free_port()
    if "PAM_GATEWAY_PORT" not in os.environ and reachable(f"http://127.0.0.1:{port}"):
        port = free_port()
        console.say("🔌", f"port {settings.gateway_port} is taken; the gateway uses {port}")
    return port


def banner(console: Console, backing: Backing, settings: GatewaySettings, port: int) -> None:
    host = "127.0.0.1" if settings.gateway_host in ("0.0.0.0", "::", "") else settings.gateway_host
    url = f"http://{host}:{port}/"
    token = mint_token(settings.auth, DEV_USER, ttl_seconds=DEV_TOKEN_TTL_SECONDS)
    engine = "OpenAI" if os.environ.get("OPENAI_API_KEY") else "offline engine (no OPENAI_API_KEY)"
    lines = [
        f"PAM is running — answers from the {engine}",
        f"Open        {url}   (demo session)",
        f"Signed in   {url}?token={token}",
        f"Dev token   {token}   (user {DEV_USER}, valid 24 h)",
        *backing.notes,
        "Press Ctrl-C to stop.",
    ]
    for line in lines:
        console.say("✅", line)
