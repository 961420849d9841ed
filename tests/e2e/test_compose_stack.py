"""``docker compose`` for real: the stack built and run in containers, driven as a user drives it.

The images come from a registry when one answers, else from local stand-ins (support/standin.py
says how they differ).  Tests reach the stack only through the gateway's port published on
127.0.0.1.  Each test is one user's session with its own compose project, removed with its
volumes afterwards; the images stay, so a later run on the same machine builds from cache.
Without a Docker engine these tests skip, which CI (``CI=true``) turns into a failure.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from support import compose, standin
from support.client import PamClient, chat_frame
from support.processes import ROOT, free_port
from support.tokens import TEST_JWT_SECRET, token

TEST_TIMEOUT = 1800  # a fresh machine's first run makes the stand-ins and installs every image's wheels
pytestmark = [pytest.mark.e2e, pytest.mark.compose, pytest.mark.timeout(TEST_TIMEOUT)]
STORED_TIMEOUT = 60.0


@dataclass
class Stack:
    project: compose.Project
    port: int

    def up(self, *args: str, profiles: tuple[str, ...] = ()) -> None:
        options = [option for profile in profiles for option in ("--profile", profile)]
        self.project.run(*options, "up", "--build", "--detach", "--wait", *args)

    async def chat(self, user: str, message: str) -> list[dict]:
        url = f"ws://127.0.0.1:{self.port}/ws/{user}?token={token(user)}"
        async with await PamClient.connect(url) as client:
            assert (await client.recv())["type"] == "connection"
            await client.send(chat_frame(message, user))
            frames = await client.answer(timeout=60)
        assert frames[-1]["type"] == "chat_response", frames[-1]
        return frames

    async def stored(self, user: str) -> int:
        """How many of ``user``'s messages the gateway's read API returns (persistence's PostgreSQL)."""
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=10) as http:
            listed = await http.get("/api/v1/conversations", headers={"Authorization": f"Bearer {token(user)}"})
        assert listed.status_code == 200, listed.text
        return sum(conversation["message_count"] for conversation in listed.json()["conversations"])

    async def until_stored(self, user: str, count: int) -> None:
        deadline = time.monotonic() + STORED_TIMEOUT
        while (found := await self.stored(user)) != count:
            assert found < count and time.monotonic() < deadline, f"{user}: {found} messages stored, not {count}"
            await asyncio.sleep(0.5)

    def container(self, service: str, index: int = 1) -> str:
        return f"{self.project.name}-{service}-{index}"


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    """The engine, the plugin, and every image the files name (real, pulled or stand-in)."""
    reason = compose.unavailable()
    if reason:
        pytest.skip(reason)
    with compose.machine_lock():  # the xdist workers start together; one makes, the other finds
        compose.install_plugin()
        return {image: standin.ensure(image) for image in standin.images_named()}


@pytest.fixture
def stack(images: dict[str, str]) -> Iterator[Stack]:
    port = free_port()
    env = {"PAM_GATEWAY_PORT": str(port), "JWT_SECRET": TEST_JWT_SECRET, "PAM_DEMO_MODE": "false"}
    project = compose.Project(f"pam-test-{uuid.uuid4().hex[:8]}", env)
    try:
        yield Stack(project, port)
    finally:
        down = ("down", "--volumes", "--remove-orphans", "--rmi", "local", "--timeout", "5")  # the build cache stays
        project.run("--profile", "cluster", *down, check=False)


def test_the_stack_comes_from_the_pinned_compose_v2(images):
    version = compose.Project("pam-version-check", {}).run("version").stdout
    assert f"v{compose.COMPOSE_VERSION}" in version, version
    assert set(images) == {"nats:2.15-alpine", "postgres:16-alpine", "python:3.11-slim"}


async def test_a_user_runs_scales_restarts_and_recreates_the_stack(stack):
    stack.up()
    await stack.chat("ana", "I spent $30 on fuel")
    await stack.until_stored("ana", 2)

    stack.up("--scale", "orchestrator=3")
    assert len(stack.project.containers("orchestrator")) == 3
    for n in range(3):
        await stack.chat("ana", f"what's the weather in Cairns, day {n}?")
    await stack.until_stored("ana", 8)

    stack.project.run("stop", "orchestrator")  # every replica
    stack.project.run("start", "orchestrator")
    stack.project.wait_for_health(stack.container("orchestrator"), "healthy")
    await stack.chat("ana", "plan a trip to Broome")

    crashed = stack.container("orchestrator")
    restarts = stack.project.restarts(crashed)
    stack.project.run("exec", "-T", "orchestrator", "sh", "-c", "kill 1")  # its process ends, not by compose
    stack.project.until(lambda: stack.project.restarts(crashed) == restarts + 1, f"{crashed} restarted")
    stack.project.wait_for_health(crashed, "healthy")
    await stack.until_stored("ana", 10)

    for command in (["ps"], ["logs", "--tail", "5"], ["stop"], ["down"]):  # none needs the tokens' secret
        stack.project.run(*command, without=("JWT_SECRET",))
    stack.up("--scale", "orchestrator=3")
    assert await stack.stored("ana") == 10  # the conversation outlives down and up
    await stack.chat("ana", "what's my budget?")
    await stack.until_stored("ana", 12)


def test_without_jwt_secret_the_gateway_stops_at_once_naming_it(stack):
    done = stack.project.run("run", "--rm", "--no-deps", "gateway", check=False, without=("JWT_SECRET",))
    assert done.returncode != 0
    assert re.search(r"JWT_SECRET is required when ENVIRONMENT=production", done.stdout + done.stderr)


async def test_a_running_stack_moves_to_the_cluster_as_the_docs_say_and_survives_a_node(stack):
    stack.up()
    await stack.chat("ben", "I spent $12 on coffee")
    await stack.until_stored("ben", 2)

    stack.project.run("--profile", "cluster", "up", "--build", "--detach")  # without recreating: caught
    said = stack.project.wait_for_health(stack.container("nats"), "unhealthy")
    assert "nats runs alone while its peer nats-2 runs" in said and "--force-recreate" in said

    stack.up("--force-recreate", "--scale", "orchestrator=2", profiles=("cluster",))  # as docs/scaling.md says
    assert stack.project.health(stack.container("nats"))[0] == "healthy"
    assert await stack.stored("ben") == 2
    for n in range(2):
        await stack.chat("ben", f"what's the weather in Darwin, day {n}?")
    await stack.until_stored("ben", 6)

    stack.project.run("--profile", "cluster", "stop", "nats")  # the node every service names first
    for n in range(3):
        await stack.chat("ben", f"log $5 for parking, stop {n}")
    await stack.until_stored("ben", 12)


def test_docker_compose_accepts_the_file_with_every_profile_and_without_the_secret(images):
    project = compose.Project("pam-config-check", {})
    for profile in ([], ["--profile", "cluster"], ["--profile", "observability"]):
        project.run(*profile, "config", "--quiet", without=("JWT_SECRET",))


def test_the_images_create_their_user_without_a_warning(images):
    for dockerfile in sorted(ROOT.glob("services/*/Dockerfile")):
        [useradd] = re.findall(r"^RUN (useradd [^\\\n]+)", dockerfile.read_text(), flags=re.MULTILINE)
        argv = ["docker", "run", "--rm", "python:3.11-slim", "sh", "-c", useradd]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and done.stderr == "", (dockerfile, done.stderr)
