"""docker compose: build and start the whole stack with two orchestrators, then chat through it.

Needs a Docker engine (``docker info`` succeeds); skipped with the reason otherwise, under CI too,
since no machine of this project has one.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from support.ci import not_on_these_machines
from support.client import PamClient, chat_frame
from support.processes import ROOT, free_port
from support.tokens import TEST_JWT_SECRET

UP_TIMEOUT_SECONDS = 900  # the first build downloads base images and wheels


def docker_unavailable() -> str | None:
    """Why the stack cannot run here, or None when it can."""
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        return f"no Docker engine: {exc}"
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["docker info failed"])[-1]
        return f"no Docker engine: {reason}"
    version = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    return None if version.returncode == 0 else "the docker compose plugin is not installed"


pytestmark = pytest.mark.e2e


@pytest.fixture
def compose_stack() -> Iterator[int]:
    """A uniquely named compose project on a free port; removed with its volumes afterwards."""
    reason = docker_unavailable()
    if reason:
        not_on_these_machines(reason)
    port = free_port()
    command = ["docker", "compose", "--project-name", f"pam-test-{uuid.uuid4().hex[:8]}"]
    env = {**os.environ, "PAM_GATEWAY_PORT": str(port), "JWT_SECRET": TEST_JWT_SECRET, "PAM_DEMO_MODE": "true"}
    try:
        subprocess.run(
            [*command, "up", "--build", "--detach", "--wait", "--scale", "orchestrator=2"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=UP_TIMEOUT_SECONDS,
        )
        yield port
    finally:
        subprocess.run([*command, "down", "--volumes", "--remove-orphans"], cwd=ROOT, env=env, timeout=120)


@pytest.mark.timeout(UP_TIMEOUT_SECONDS + 300)
async def test_a_chat_goes_through_the_composed_stack(compose_stack):
    url = f"ws://127.0.0.1:{compose_stack}/ws/compose-user?token=demo-token"
    async with await PamClient.connect(url) as client:
        hello = await client.recv()
        assert hello["type"] == "connection" and hello["mode"] == "demo"
        for message in ("I spent $30 on fuel", "what's the weather in Cairns?"):
            await client.send(chat_frame(message, "compose-user"))
            frames = await client.answer()
            assert frames[-1]["type"] == "chat_response", frames[-1]
            assert any(frame["type"] == "chat_chunk" for frame in frames)
