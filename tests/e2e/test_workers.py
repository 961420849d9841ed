"""Orchestrators as a queue group: shared work, a worker killed, none at all, a failing LLM."""

from __future__ import annotations

import json
import signal

import httpx
import nats
from pam_shared import subjects
from pam_shared.subjects import Subjects
from support.client import PamClient
from support.tokens import token


async def chat_n(gateway, n: int, user: str = "u") -> list[list[dict]]:
    async with await PamClient.connect(gateway.ws_url(f"/ws/{user}?token=demo-token")) as client:
        await client.recv()
        return [await client.chat(f"message {i}", user) for i in range(n)]


def instances(gateway) -> list[dict]:
    response = httpx.get(gateway.http_url("/api/health/detailed"), timeout=5)
    return response.json()["orchestrators"]


async def test_two_orchestrators_share_the_work(stack):
    stack.orchestrator(PAM_INSTANCE_ID="worker-a")
    stack.orchestrator(PAM_INSTANCE_ID="worker-b")
    gateway = stack.gateway(PAM_RATE_BURST="100")
    answers = await chat_n(gateway, 24)
    assert all(a[-1]["type"] == "chat_response" for a in answers)
    served = {i["metadata"]["instance"]: i["requests"] for i in instances(gateway)}
    assert set(served) == {"worker-a", "worker-b"}
    assert sum(served.values()) == 24 and min(served.values()) > 0


async def test_killing_one_orchestrator_leaves_the_other_serving(stack):
    doomed = stack.orchestrator(PAM_INSTANCE_ID="doomed")
    stack.orchestrator(PAM_INSTANCE_ID="survivor")
    gateway = stack.gateway()
    doomed.kill()
    answers = await chat_n(gateway, 10)
    assert [a[-1]["type"] for a in answers] == ["chat_response"] * 10
    assert [i["metadata"]["instance"] for i in instances(gateway)] == ["survivor"]


async def test_no_orchestrator_means_an_immediate_clear_error(stack):
    gateway = stack.gateway(PAM_REPLY_TIMEOUT_SECONDS="60")
    async with await PamClient.connect(gateway.ws_url("/ws/u?token=demo-token")) as client:
        await client.recv()
        frames = await client.chat("anyone there?", "u", message_id="q1", timeout=5)
    assert isinstance(frames[0].pop("event_id"), int)  # kept for resume, like any answer's end
    assert frames == [
        {
            "type": "error",
            "code": "orchestrator_unavailable",
            "message": frames[0]["message"],
            "details": None,
            "reply_to": "q1",
        }
    ]


async def test_a_silent_orchestrator_times_out(stack):
    frozen = stack.orchestrator()
    gateway = stack.gateway(PAM_REPLY_TIMEOUT_SECONDS="1.5")
    frozen.signal(signal.SIGSTOP)
    try:
        async with await PamClient.connect(gateway.ws_url("/ws/u?token=demo-token")) as client:
            await client.recv()
            frames = await client.chat("hello?", "u", timeout=10)
    finally:
        frozen.signal(signal.SIGCONT)
    assert [(f["type"], f["code"]) for f in frames] == [("error", "timeout")]


async def test_llm_failures_become_llm_error_frames(stack, llm_env):
    stack.orchestrator(**llm_env, PAM_OPENAI_MAX_RETRIES="0", PAM_BREAKER_FAILURES="10")
    gateway = stack.gateway()
    async with await PamClient.connect(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        await client.recv()
        for directive, kind in (("[status:500]", "server_error"), ("[status:429]", "rate_limited")):
            frames = await client.chat(f"plan my trip {directive}", "u1")
            assert [(f["type"], f["code"], f["details"]) for f in frames] == [("error", "llm_error", {"kind": kind})]
        cut = await client.chat("tell me a long story about the outback [cut]", "u1")
        assert cut[-1]["type"] == "chat_response" and cut[-1]["truncated"] == "error"  # what was said is kept
        assert all(f["type"] == "chat_chunk" for f in cut[:-1])
        recovered = await client.chat("and now a normal answer", "u1")
        assert recovered[-1]["type"] == "chat_response"


async def test_slow_llm_keeps_the_answer_alive_past_the_reply_timeout(stack, llm_env):
    """Progress messages from the orchestrator stop the gateway timing out a slow model."""
    stack.orchestrator(**llm_env, PAM_PROGRESS_INTERVAL_SECONDS="0.3")
    gateway = stack.gateway(PAM_REPLY_TIMEOUT_SECONDS="1.5")
    async with await PamClient.connect(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        await client.recv()
        frames = await client.chat("slow one [delay:4]", "u1")
    assert frames[-1]["type"] == "chat_response" and frames[-1]["message"] == "Echo: slow one"


async def test_several_gateways_and_orchestrators_side_by_side(stack):
    """Each gateway gets exactly its own answers back; NATS is the only thing they share."""
    stack.orchestrator()
    stack.orchestrator()
    gateways = [stack.gateway(), stack.gateway()]
    clients = [await PamClient.connect(g.ws_url(f"/ws/u{i}?token=demo-token")) for i, g in enumerate(gateways)]
    try:
        for client in clients:
            await client.recv()
        for round_ in range(5):
            for i, client in enumerate(clients):
                await client.send({"type": "chat", "message": f"hello {round_}", "message_id": f"{i}-{round_}"})
            for i, client in enumerate(clients):
                frames = await client.answer()
                assert {f["reply_to"] for f in frames} == {f"{i}-{round_}"}
                assert frames[-1]["type"] == "chat_response"
    finally:
        for client in clients:
            await client.close()


async def test_a_request_the_worker_cannot_read_is_ended_not_ignored(stack, nats_url, namespace):
    """A gateway of another version must hear an end at once, not wait out two timeouts."""
    stack.orchestrator()
    nc = await nats.connect(nats_url)
    try:
        reply = await nc.request(Subjects(namespace).chat_request, b'{"request_from": "the future"}', timeout=5)
    finally:
        await nc.close()
    assert (reply.headers or {}).get(subjects.REPLY_KIND_HEADER) == subjects.REPLY_END
    assert json.loads(reply.data)["code"] == "internal_error"
