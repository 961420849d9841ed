"""The soak's own PAM stack: two gateways on fixed ports, orchestrators, and the chaos done to them.

Services run at ``PAM_LOG_LEVEL=warning`` by default, so readiness is probed (the
gateway's health endpoint, the orchestrator's ``$SRV.PING`` reply) instead of read
from log lines.  Every process is a ``support.processes.ServiceProcess`` from the
tests, whose output goes to ``<log_dir>/<name>.log``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client
from pam_shared import bus
from pam_shared.subjects import Subjects

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.processes import BIN, ServiceProcess, free_port  # noqa: E402

READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0
PROBE_INTERVAL_SECONDS = 0.2
CHAOS_ACTIONS = ("gateway", "orchestrator-term", "orchestrator-kill")


class Stack:
    """Starts, restarts and (always) stops the services of one soak run."""

    def __init__(self, env: dict[str, str], log_dir: Path, gateways: int) -> None:
        self.env = env
        self.log_dir = log_dir
        self.t0 = time.monotonic()
        """Timeline times are seconds since this (the soak sets it to the start of the load)."""
        self.ports = [free_port() for _ in range(gateways)]
        self.gateways = [
            ServiceProcess(f"gateway-{i + 1}", [str(BIN / "pam-gateway")], {**env, "PAM_GATEWAY_PORT": str(p)}, log_dir)
            for i, p in enumerate(self.ports)
        ]
        self.orchestrators: list[ServiceProcess] = []
        """Running orchestrators, oldest first."""
        self.timeline: list[dict[str, Any]] = []
        self.restarts = {action: 0 for action in CHAOS_ACTIONS}
        self._everything: list[ServiceProcess] = list(self.gateways)
        self._nc: Client | None = None

    async def start(self, nc: Client, orchestrators: int, fake_llm: bool) -> None:
        """Orchestrators first (on the offline engine, or the fake LLM), then the gateways."""
        self._nc = nc
        if fake_llm:
            base_url = await self._start_fake_llm()
            self.env = {**self.env, "OPENAI_API_KEY": "sk-soak-not-a-real-key", "OPENAI_BASE_URL": base_url}
        for _ in range(orchestrators):
            await self._add_orchestrator()
        for gateway in self.gateways:
            await self._start_gateway(gateway)

    def close(self) -> None:
        """Stop every process this stack started (safe to call twice, and from outside the event loop)."""
        for process in reversed(self._everything):
            process.stop()

    async def _start_fake_llm(self) -> str:
        """The tests' OpenAI-compatible server, for slower streamed answers; returns its base URL."""
        argv = [sys.executable, str(ROOT / "tests/support/fake_openai.py")]
        server = ServiceProcess("fake-openai", argv, {}, self.log_dir)
        self._everything.append(server)
        server.start()
        port = (await asyncio.to_thread(server.wait_for, r"listening on (\d+)", READY_TIMEOUT_SECONDS)).group(1)
        return f"http://127.0.0.1:{port}/v1"

    def begin_load(self, t0: float) -> None:
        """From now on times are seconds since the load began; the start-up ones become negative."""
        for entry in self.timeline:
            entry["at"] = round(entry["at"] - (t0 - self.t0), 3)
        self.t0 = t0

    # chaos

    async def run_chaos(self, plan: list[str], t0: float, duration: float) -> None:
        """Carry out ``plan`` at evenly spaced times during the load; gateways are restarted in turn."""
        gateway_turn = 0
        for i, action in enumerate(plan):
            await asyncio.sleep(max(0.0, t0 + duration * (i + 1) / (len(plan) + 1) - time.monotonic()))
            if action == "gateway":
                await self.restart_gateway(gateway_turn % len(self.gateways))
                gateway_turn += 1
            else:
                await self.replace_orchestrator(kill=action == "orchestrator-kill")
            self.restarts[action] += 1

    async def restart_gateway(self, index: int) -> None:
        """A deploy: SIGTERM, wait for it to drain and exit, start it again on the same port."""
        gateway = self.gateways[index]
        self._note(f"{gateway.name} (port {self.ports[index]}): SIGTERM")
        code = await asyncio.to_thread(gateway.stop, STOP_TIMEOUT_SECONDS)
        self._note(f"{gateway.name}: exited with {code}")
        await self._start_gateway(gateway)
        self._note(f"{gateway.name}: ready again")

    async def replace_orchestrator(self, kill: bool) -> None:
        """Stop the oldest orchestrator (SIGTERM: it drains; SIGKILL: it vanishes) and start a new one."""
        old = self.orchestrators.pop(0)
        if kill:
            await asyncio.to_thread(old.kill)
            self._note(f"{old.name}: SIGKILL")
        else:
            old.signal(signal.SIGTERM)
            self._note(f"{old.name}: SIGTERM")
        await self._add_orchestrator()
        if not kill:
            code = await asyncio.to_thread(old.stop, STOP_TIMEOUT_SECONDS)
            self._note(f"{old.name}: exited with {code}")

    # processes

    async def _start_gateway(self, gateway: ServiceProcess) -> None:
        gateway.start()
        url = f"http://127.0.0.1:{gateway.env['PAM_GATEWAY_PORT']}/api/health"
        async with httpx.AsyncClient(timeout=2) as http:
            await _until(gateway, lambda: _http_ok(http, url))

    async def _add_orchestrator(self) -> None:
        number = sum(1 for p in self._everything if p.name.startswith("orchestrator-")) + 1
        instance = f"soak-orchestrator-{number}"
        env = {**self.env, "PAM_INSTANCE_ID": instance}
        orchestrator = ServiceProcess(f"orchestrator-{number}", [str(BIN / "pam-orchestrator")], env, self.log_dir)
        self._everything.append(orchestrator)
        orchestrator.start()
        assert self._nc is not None
        await _until(orchestrator, lambda: _serving(self._nc, Subjects(env["PAM_NATS_NAMESPACE"]), instance))
        self.orchestrators.append(orchestrator)
        self._note(f"{orchestrator.name}: ready")

    def _note(self, event: str) -> None:
        at = round(time.monotonic() - self.t0, 3)
        self.timeline.append({"at": at, "event": event})
        print(f"  [{at:7.1f} s] {event}", flush=True)


async def _until(process: ServiceProcess, ready: Callable[[], Awaitable[bool]]) -> None:
    """Probe until ready; fail with the log's tail if the process dies or takes too long."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not process.running:
            break
        if await ready():
            return
        await asyncio.sleep(PROBE_INTERVAL_SECONDS)
    tail = "\n".join(process.lines[-30:])
    raise RuntimeError(f"{process.name} did not become ready; last lines:\n{tail}")


async def _http_ok(http: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await http.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def _serving(nc: Client, names: Subjects, instance: str) -> bool:
    """True once the orchestrator ``instance`` answers service discovery, i.e. takes chats."""
    replies = await bus.gather_replies(nc, f"$SRV.PING.{names.orchestrator_service}", 0.25)
    for reply in replies:
        try:
            metadata = json.loads(reply.data).get("metadata") or {}
        except ValueError:
            continue
        if metadata.get("instance") == instance:
            return True
    return False
