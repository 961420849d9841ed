"""The project's own services, started for one scenario as real processes on a namespace of their own.

``pam-gateway`` and ``pam-orchestrator`` run exactly as installed; only when other
uvicorn options are asked for does the gateway start through ``bench.variants``.
Everything is stopped, and the namespace's JetStream stream deleted, on exit.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from types import TracebackType

import nats
from nats.aio.msg import Msg
from pam_shared.auth import mint_token
from pam_shared.settings import load_auth_settings
from pam_shared.subjects import Subjects

from bench.procs import BIN, Child, free_port, http_ok, wait_ready
from bench.server_options import ServerOptions
from bench.variants import HOLD, TRACEMALLOC

NATS_URL = os.environ.get("NATS_URL") or "nats://127.0.0.1:4222"
JWT_SECRET = "pam-bench-secret-0123456789abcdef"
UNLIMITED = "1000000000"
LIMITS_OFF = {
    name: UNLIMITED
    for name in ("PAM_RATE_BURST", "PAM_RATE_PER_SECOND", "PAM_USER_MESSAGES_PER_MINUTE", "PAM_IP_CONNECTS_PER_MINUTE")
}
"""Abuse limits sized for people, not for a load generator; the code paths still run (leases included)."""
BUDGETS_ON = {"PAM_USER_TOKENS_PER_DAY": UNLIMITED, "PAM_USER_TOKENS_PER_MONTH": UNLIMITED}
"""Token budgets never reached, so every chat pays their check (gateway) and debit (orchestrator)."""


def service_env(namespace: str, llm_url: str | None) -> dict[str, str]:
    """What every service of one run gets; the bench's own environment cannot leak an API key in."""
    return {
        "NATS_URL": NATS_URL,
        "PAM_NATS_NAMESPACE": namespace,
        "JWT_SECRET": JWT_SECRET,
        "ENVIRONMENT": "development",
        "PAM_LOG_LEVEL": "warning",
        "OPENAI_API_KEY": "sk-bench-not-a-real-key" if llm_url else "",
        "OPENAI_BASE_URL": llm_url or "",
        "OPENAI_MODEL": "bench",
        "PAM_SHUTDOWN_GRACE_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
        **LIMITS_OFF,
        **BUDGETS_ON,
    }


class Project:
    """One gateway and ``orchestrators`` orchestrators (none for idle-socket runs).

    ``options`` choose the gateway's uvicorn implementations; ``env`` is laid over every
    service's environment (a setting's before/after, e.g. ``PAM_CHUNK_WINDOW_MS=0``).
    """

    def __init__(
        self,
        tag: str,
        options: ServerOptions | None = None,
        llm_url: str | None = None,
        orchestrators: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        options = options or ServerOptions()
        self.namespace = f"bench{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        base = {**service_env(self.namespace, llm_url), **options.to_env(), **(env or {})}
        self.orchestrators = [self._orchestrator(f"{tag}-orchestrator-{i + 1}", base) for i in range(orchestrators)]
        self.gateway = self._gateway(f"{tag}-gateway", options, {**base, "PAM_GATEWAY_PORT": str(self.port)})
        self.tracing = TRACEMALLOC in base
        self._settings = load_auth_settings({"JWT_SECRET": JWT_SECRET})

    @staticmethod
    def _gateway(name: str, options: ServerOptions, env: dict[str, str]) -> Child:
        if options.is_default and TRACEMALLOC not in env:
            return Child(name, [str(BIN / "pam-gateway")], env)
        return Child(name, [sys.executable, "-m", "bench.variants", "gateway"], env)

    @staticmethod
    def _orchestrator(name: str, env: dict[str, str]) -> Child:
        if HOLD in env:
            return Child(name, [sys.executable, "-m", "bench.variants", "orchestrator"], env)
        return Child(name, [str(BIN / "pam-orchestrator")], env)

    def __enter__(self) -> Project:
        try:
            for child in self.orchestrators:
                child.start()
            self.gateway.start()
            wait_ready(self.gateway, lambda: http_ok(f"http://127.0.0.1:{self.port}/api/health"))
            if self.orchestrators:
                service = Subjects(self.namespace).orchestrator_service
                wait_ready(self.orchestrators[0], lambda: asyncio.run(_answering(service)) >= len(self.orchestrators))
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        self.gateway.stop()
        for child in self.orchestrators:
            child.stop()
        asyncio.run(_delete_streams(self.namespace))

    def ws_url(self, user_id: str) -> str:
        """An authenticated (JWT, not demo) socket URL for ``user_id``."""
        token = mint_token(self._settings, user_id)
        return f"ws://127.0.0.1:{self.port}/ws/{user_id}?token={token}"


async def _answering(service: str, window: float = 0.25) -> int:
    """How many instances of a ``nats.micro`` service answer ``$SRV.PING`` within ``window``."""
    nc = await nats.connect(NATS_URL)
    answers: list[bytes] = []

    async def answered(msg: Msg) -> None:
        if not (msg.headers and msg.headers.get("Status") == "503"):
            answers.append(msg.data)

    try:
        inbox = nc.new_inbox()
        await nc.subscribe(inbox, cb=answered)
        await nc.publish(f"$SRV.PING.{service}", b"", reply=inbox)
        await asyncio.sleep(window)
    finally:
        await nc.close()
    return len(answers)


async def _delete_streams(namespace: str) -> None:
    """Streams (events, the rate bucket) outlive processes; each run removes those of its namespace."""
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    try:
        for info in await js.streams_info():
            if namespace.upper() in info.config.name.upper():
                await js.delete_stream(info.config.name)
    finally:
        await nc.close()
