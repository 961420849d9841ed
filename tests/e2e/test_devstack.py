"""``pam-stack`` (``make run``): the whole stack on embedded servers, a chat through it, Ctrl-C, nothing left."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.client import PamClient, chat_frame
from support.processes import BIN, ROOT, ServiceProcess, free_port

pytestmark = pytest.mark.e2e

STOP_TIMEOUT = 30.0
INSTALL_TIMEOUT = 420.0  # a fresh clone's `make install`: uv, every package, from uv's cache when it has them


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Searchable by others: as root, the embedded PostgreSQL runs as an unprivileged user."""
    with tempfile.TemporaryDirectory(prefix="pam-stack-test-") as path:
        Path(path).chmod(0o755)
        yield Path(path)


def run_stack(data_dir: Path, tmp_path: Path, **env: str) -> ServiceProcess:
    base = {
        "PAM_DATA_DIR": str(data_dir),
        "PAM_GATEWAY_PORT": str(free_port()),
        "NATS_URL": "",
        "DATABASE_URL": "",
        "OPENAI_API_KEY": "",
        "NO_COLOR": "1",
        "PYTHONUNBUFFERED": "1",
    }
    return ServiceProcess("pam-stack", [str(BIN / "pam-stack")], {**base, **env}, tmp_path).start()


def processes_mentioning(marker: str) -> list[str]:
    """Command lines of live processes whose command line or environment holds ``marker``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline + environ:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finding leftover processes reads /proc")
async def test_the_stack_answers_a_chat_and_ctrl_c_leaves_nothing_running(data_dir, tmp_path):
    marker = f"t{uuid.uuid4().hex[:10]}"
    stack = run_stack(data_dir, tmp_path, PAM_NATS_NAMESPACE=marker)
    pg_data: Path | None = None
    try:
        url = stack.wait_for(r"Open\s+(http://\S+)").group(1)
        # Where the stack says: from a checkout "nobody" cannot enter, PostgreSQL's data is elsewhere.
        pg_data = Path(stack.wait_for(r"PostgreSQL .* \(embedded, data in (\S+)\)").group(1))
        nats_data = Path(stack.wait_for(r"NATS .* \(embedded, JetStream data in (\S+)\)").group(1))
        dev_token = stack.wait_for(r"Dev token\s+(\S+)").group(1)
        ws_url = url.replace("http://", "ws://") + f"ws/dev-user?token={dev_token}"
        async with await PamClient.connect(ws_url) as client:
            hello = await client.recv()
            assert hello["mode"] == "live" and hello["user_id"] == "dev-user"
            await client.send(chat_frame("I spent $12 on fuel", "dev-user"))
            frames = await client.answer()
        assert frames[-1]["type"] == "chat_response", frames[-1]
        assert len(processes_mentioning(marker)) >= 5  # nats, postgres, gateway, 2 orchestrators, ...
        stack.signal(signal.SIGINT)
        assert stack.proc is not None and stack.proc.wait(STOP_TIMEOUT) == 0
        stack.wait_for("stopped")
        assert processes_mentioning(marker) == []
        assert (pg_data / "PG_VERSION").exists() and (nats_data / "jetstream").is_dir()
        assert nats_data.is_relative_to(data_dir)
    finally:
        if stack.running:
            stack.signal(signal.SIGINT)
            assert stack.proc is not None
            stack.proc.wait(STOP_TIMEOUT)
        if pg_data is not None and not pg_data.is_relative_to(data_dir):
            shutil.rmtree(pg_data.parent, ignore_errors=True)  # the private place kept for this data_dir


def test_a_given_server_that_does_not_answer_is_named_and_nothing_starts(data_dir, tmp_path):
    stack = run_stack(data_dir, tmp_path, NATS_URL="nats://127.0.0.1:1")
    stack.wait_for(r"NATS_URL is set to nats://127\.0\.0\.1:1, but no NATS answers there")
    assert stack.proc is not None and stack.proc.wait(STOP_TIMEOUT) == 1
    assert not (data_dir / "nats").exists()


@pytest.fixture
def private_clone() -> Iterator[Path]:
    """A clone of this repository in a fresh folder only its owner can enter (as ``mktemp -d`` makes: 0700)."""
    parent = Path(tempfile.mkdtemp(prefix="pam-clone-"))
    try:
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(parent / "pam")], check=True, timeout=120)
        yield parent / "pam"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def make_run(clone: Path, tmp_path: Path, **env: str) -> ServiceProcess:
    """``make run`` in ``clone`` as a terminal's foreground job: leading its own process group (setsid),
    so Ctrl-C reaches make and pam-stack together (the services and servers are in groups of their own)."""
    uv = shutil.which("uv") or ROOT / ".pam/bootstrap/bin/uv"  # this checkout's, so the clone does not fetch uv
    make = ["make", "-C", str(clone), "run", *([f"UV={uv}"] if Path(uv).exists() else [])]
    unset = [arg for name in ("VIRTUAL_ENV", "PAM_DATA_DIR", "NATS_URL", "DATABASE_URL") for arg in ("-u", name)]
    return ServiceProcess("make-run", ["env", *unset, "setsid", *make], env, tmp_path).start()


@pytest.mark.timeout(INSTALL_TIMEOUT + 180)
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finding leftover processes reads /proc")
async def test_make_run_works_from_a_fresh_clone_in_a_private_folder(private_clone, tmp_path):
    """As CI and containers run it (root): PostgreSQL's data moves where it can reach it, and says where."""
    marker = f"t{uuid.uuid4().hex[:10]}"
    env = {"PAM_NATS_NAMESPACE": marker, "PAM_GATEWAY_PORT": str(free_port()), "OPENAI_API_KEY": "", "NO_COLOR": "1"}
    stack = make_run(private_clone, tmp_path, **env)
    assert stack.proc is not None
    private_data: Path | None = None
    try:
        url = stack.wait_for(r"Open\s+(http://\S+)", timeout=INSTALL_TIMEOUT).group(1)
        data = Path(stack.wait_for(r"PostgreSQL .* \(embedded, data in (\S+)\)").group(1))
        if os.geteuid() == 0:
            private_data = data.parent
            assert not data.is_relative_to(private_clone.parent)
            stack.wait_for(rf"cannot enter {re.escape(str(private_clone.parent))}: its programs and data are in")
        async with await PamClient.connect(url.replace("http://", "ws://") + "ws/visitor?token=demo-token") as client:
            assert (await client.recv())["mode"] == "demo"
            await client.send(chat_frame("I spent $12 on fuel", "visitor"))
            frames = await client.answer()
        assert frames[-1]["type"] == "chat_response", frames[-1]
        assert os.getpgid(stack.proc.pid) == stack.proc.pid
        os.killpg(stack.proc.pid, signal.SIGINT)
        stack.proc.wait(STOP_TIMEOUT)
        stack.wait_for("stopped")
        assert processes_mentioning(marker) == []
    finally:
        if stack.running:
            os.killpg(stack.proc.pid, signal.SIGKILL)
            stack.proc.wait()
        if private_data is not None:
            shutil.rmtree(private_data, ignore_errors=True)
