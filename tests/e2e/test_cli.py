"""The `pam` command as a user runs it: the real executable against a real stack."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from support.processes import BIN, free_port
from support.tokens import token

pytestmark = pytest.mark.e2e

RUN_TIMEOUT = 30.0


@pytest.fixture
def pam(service_env: dict[str, str]):
    """Run `pam ARGS` with the test's NATS namespace and secret; returns the finished process."""

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "pam"), *args],
            env={**os.environ, **service_env, "PAM_URL": "", "PAM_TOKEN": "", **env},
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=RUN_TIMEOUT,
        )

    return run


def url(gateway) -> str:
    return gateway.http_url("")


def test_chat_streams_the_answer_and_shows_the_ui_action(stack, pam, llm_env):
    stack.orchestrator(**llm_env, PAM_CHUNK_WINDOW_MS="0")  # one chunk per token, so the count is known
    gateway = stack.gateway()
    expense = '[tool:create_expense:{"amount": 42, "category": "fuel"}]'
    message = f"I spent $42 on diesel [say:Logged $42 of diesel for you.] {expense}"
    result = pam("chat", message, "--url", url(gateway), "--token", token("cli-user"), "--region", "Queensland")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"🔌 connected to ws://127.0.0.1:{gateway.port}/api/v1/pam/ws")
    assert "mode live, user cli-user" in lines[0]
    assert lines[1].startswith("📤 chat 'I spent $42 on diesel") and "region 'Queensland'" in lines[1]
    assert lines[2] == "📨 Logged $42 of diesel for you."
    assert lines[3] == '📨 ui_action create expense {"amount":42,"category":"fuel"}'
    assert lines[4].startswith("✅ chat_response: intent fuel, 6 chunks, first chunk ")


def test_chat_error_frame_is_one_clear_line_and_a_failure(stack, pam):
    gateway = stack.gateway()
    result = pam("chat", "anyone there?", "--url", url(gateway))
    assert result.returncode == 1
    assert result.stderr.startswith("❌ no orchestrators (orchestrator_unavailable): ")
    assert "📤 chat 'anyone there?'" in result.stdout


def test_ping_reports_connect_time_and_round_trip(stack, pam):
    gateway = stack.gateway()
    result = pam("ping", "--url", url(gateway), "--count", "2")
    assert result.returncode == 0, result.stderr
    assert re.search(r"mode demo, user demo:[0-9a-f]{32}\b", result.stdout)
    assert result.stdout.count("📤 ping") == 2 and result.stdout.count("📨 pong in ") == 2
    assert "✅ round trip min/avg/max " in result.stdout


def test_health_detailed_lists_the_orchestrator_and_fails_without_one(stack, pam, database_url):
    gateway = stack.gateway()
    stack.persistence(DATABASE_URL=database_url)
    degraded = pam("health", "--detailed", "--url", url(gateway))
    assert degraded.returncode == 1
    assert "❌ orchestrators: 0 answering" in degraded.stdout
    assert degraded.stderr.strip().endswith("is degraded: no orchestrators answering (orchestrator_unavailable)")

    stack.orchestrator(PAM_INSTANCE_ID="cli-orch")
    healthy = pam("health", "--detailed", "--url", url(gateway))
    assert healthy.returncode == 0, healthy.stderr
    assert "🔌 NATS connected" in healthy.stdout and "✅ orchestrators: 1 answering" in healthy.stdout
    assert any(line.split()[:2] == ["cli-orch", "0.1.0"] for line in healthy.stdout.splitlines())
    assert healthy.stdout.splitlines()[-1] == f"✅ pam-gateway 0.1.0 at {url(gateway)} is healthy"


def test_stats_lists_every_orchestrator_and_persistence_instance(stack, pam, namespace, database_url):
    stack.orchestrator(PAM_INSTANCE_ID="cli-a")
    stack.orchestrator(PAM_INSTANCE_ID="cli-b")
    stack.persistence(PAM_INSTANCE_ID="cli-p", DATABASE_URL=database_url)
    result = pam("stats")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["service", "instance", "version", "uptime", "requests", "errors"]
    rows = [line.split() for line in lines[1:4]]
    assert [row[:3] for row in rows] == [
        [f"{namespace}-orchestrator", "cli-a", "0.1.0"],
        [f"{namespace}-orchestrator", "cli-b", "0.1.0"],
        [f"{namespace}-persistence", "cli-p", "0.1.0"],
    ]
    assert [row[4:] for row in rows[:2]] == [["0", "0"], ["0", "0"]]
    assert f"✅ {namespace}-orchestrator: 2 answering" in result.stdout
    assert f"✅ {namespace}-persistence: 1 answering" in result.stdout


def test_stats_names_a_kind_with_no_instances(stack, pam, namespace):
    stack.orchestrator(PAM_INSTANCE_ID="cli-only")
    result = pam("stats")
    assert result.returncode == 0, result.stderr
    assert f"❌ {namespace}-persistence: 0 answering" in result.stdout


def test_stats_fails_clearly_when_nothing_answers_or_nats_is_down(pam, namespace):
    empty = pam("stats", "--window", "0.2")
    assert empty.returncode == 1
    assert empty.stderr.strip() == f"❌ no PAM service answered $SRV.STATS in namespace '{namespace}'"

    port = free_port()
    down = pam("stats", NATS_URL=f"nats://127.0.0.1:{port}")
    assert down.returncode == 1
    assert down.stderr.startswith(f"❌ NATS unreachable at nats://127.0.0.1:{port} (")


def test_minted_token_opens_a_live_session_and_bad_ones_say_why(stack, pam):
    gateway = stack.gateway()
    minted = pam("token", "--user", "cli-user", "--ttl", "120")
    assert minted.returncode == 0, minted.stderr
    assert "✅ token for cli-user (role authenticated), valid 2m00s, signed with JWT_SECRET" in minted.stderr
    live = minted.stdout.strip()

    accepted = pam("ping", "--url", url(gateway), "--token", live)
    assert accepted.returncode == 0, accepted.stderr
    assert "(mode live, user cli-user," in accepted.stdout

    mismatch = pam("ping", "--url", url(gateway), "--token", live, "--user", "someone-else")
    assert (mismatch.returncode, mismatch.stdout) == (1, "")
    assert mismatch.stderr.startswith("❌ auth failed (user_mismatch, close code 4403): ")

    garbage = pam("ping", "--url", url(gateway), "--token", "not-a-jwt")
    assert garbage.stderr.startswith("❌ auth failed (token_invalid, close code 4401): ")
    assert "not-a-jwt" not in garbage.stderr


def test_unreachable_gateway_is_one_clear_line(pam):
    base = f"http://127.0.0.1:{free_port()}"
    for args in (["health"], ["health", "--detailed"], ["ping"], ["chat", "hello"]):
        result = pam(*args, "--url", base)
        assert result.returncode == 1, args
        assert result.stderr.startswith("❌ backend unreachable at "), args
        assert result.stderr.count("\n") == 1, args


def test_production_without_a_secret_refuses_to_mint(pam):
    result = pam("token", "--user", "x", ENVIRONMENT="production", JWT_SECRET="")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "❌ JWT_SECRET is required when ENVIRONMENT=production (unless SUPABASE_URL is set)\n"
    keys_only = pam(
        "token", "--user", "x", ENVIRONMENT="production", JWT_SECRET="", SUPABASE_URL="https://r.supabase.co"
    )
    assert (keys_only.returncode, keys_only.stdout) == (1, "")
    assert keys_only.stderr.startswith("❌ minting a token needs JWT_SECRET")


def test_debug_switches_verbose_logs_for_one_user_in_the_running_services(stack, pam):
    gateway = stack.gateway(PAM_LOG_LEVEL="info")
    result = pam("debug", "--user", "watched-user", "on")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "✅ debug logging on for user watched-user"
    gateway.wait_for("debug logging on for watched-user")
    assert pam("debug", "--session", "abc123", "off").returncode == 0
    gateway.wait_for("debug logging off for abc123")
