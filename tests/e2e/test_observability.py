"""Logs an operator can follow: one trace id per chat across services, debug switched at run time."""

from __future__ import annotations

import json
import re

import nats
from pam_shared.debugging import DebugSwitch, switch_encoder
from pam_shared.subjects import Subjects
from support.client import PamClient
from support.tokens import token


async def test_a_chat_s_trace_id_is_in_the_gateway_orchestrator_and_persistence_lines(stack, llm_env, database_url):
    persistence = stack.persistence(DATABASE_URL=database_url)
    orchestrator = stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    async with await PamClient.connect(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        await client.recv()
        await client.chat("cheapest fuel in Alice Springs?", "u1")
    accepted = gateway.wait_for(r"chat accepted .*trace_id=([0-9a-f]{32})")
    trace_id = accepted.group(1)
    answered = orchestrator.wait_for(r"answered fuel via 127.0.0.1:\d+/fake-model .*trace_id=([0-9a-f]{32})")
    assert answered.group(1) == trace_id
    for kind in ("user_message", "answer"):
        persistence.wait_for(rf"stored {kind} event .*trace_id={trace_id}")


async def test_production_logs_are_json_lines_with_the_context_fields(stack):
    stack.orchestrator(ENVIRONMENT="production")
    gateway = stack.gateway(ENVIRONMENT="production", PAM_DEMO_MODE="true")
    async with await PamClient.connect(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        await client.recv()
    line = gateway.wait_for(r'^\{.*"socket opened').string
    entry = json.loads(line)
    assert entry["service"] == "gateway" and entry["level"] == "info" and entry["event"] == "connection"
    assert entry["user_id"] == "u1" and re.fullmatch(r"[0-9a-f]{16}", entry["session_id"])
    assert entry["instance"] and entry["timestamp"].endswith("Z")


async def test_debug_logging_is_switched_per_user_at_run_time(stack, nats_url, namespace):
    stack.orchestrator(PAM_LOG_LEVEL="info")
    gateway = stack.gateway(PAM_LOG_LEVEL="info")
    url = gateway.ws_url
    async with (
        await PamClient.connect(url(f"/ws/watched?token={token('watched')}")) as watched,
        await PamClient.connect(url(f"/ws/quiet?token={token('quiet')}")) as quiet,
    ):
        await watched.recv()
        await quiet.recv()
        await watched.chat("before", "watched")
        nc = await nats.connect(nats_url)
        await nc.publish(
            Subjects(namespace).debug_control, switch_encoder.encode(DebugSwitch(enabled=True, user_id="watched"))
        )
        await nc.close()
        gateway.wait_for("debug logging on for watched")
        mark = len(gateway.lines)
        await quiet.chat("not debugged", "quiet")
        await watched.chat("debugged", "watched")
    gateway.wait_for(r"chat accepted .*user_id=watched", after=mark)
    debug_lines = [line for line in gateway.lines if "chat accepted" in line]
    assert len(debug_lines) == 1 and "user_id=watched" in debug_lines[0]
