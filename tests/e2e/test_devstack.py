"""``pam-stack`` (``make run``): the whole stack on embedded servers, a chat through it, Ctrl-C, nothing left."""

from __future__ import annotations

import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.client import PamClient, chat_frame
from support.processes import BIN, ServiceProcess, free_port

pytestmark = pytest.mark.e2e

STOP_TIMEOUT = 30.0


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
    try:
        url = stack.wait_for(r"Open\s+(http://\S+)").group(1)
        dev_token = stack.wait_for(r"Dev token\s+(\S+)").group(1)
        ws_url = url.replace("http://", "ws://") + f"ws/dev-user?token={dev_token}"
        async with await PamClient.connect(ws_url) as client:
            hello = await client.recv()
            assert hello["mode"] == "live" and hello["user_id"] == "dev-user"
            await client.send(chat_frame("I spent $12 on fuel", "dev-user"))
            frames = await client.answer()
        assert frames[-1]["type"] == "chat_response", frames[-1]
        assert len(processes_mentioning(marker)) >= 5  # nats, postgres, gateway, 2 orchestrators, ...
    finally:
        stack.signal(signal.SIGINT)
        assert stack.proc is not None and stack.proc.wait(STOP_TIMEOUT) == 0
    stack.wait_for("stopped")
    assert processes_mentioning(marker) == []
    assert (data_dir / "postgres" / "data" / "PG_VERSION").exists() and (data_dir / "nats" / "jetstream").is_dir()


def test_a_given_server_that_does_not_answer_is_named_and_nothing_starts(data_dir, tmp_path):
    stack = run_stack(data_dir, tmp_path, NATS_URL="nats://127.0.0.1:1")
    stack.wait_for(r"NATS_URL is set to nats://127\.0\.0\.1:1, but no NATS answers there")
    assert stack.proc is not None and stack.proc.wait(STOP_TIMEOUT) == 1
    assert not (data_dir / "nats").exists()
