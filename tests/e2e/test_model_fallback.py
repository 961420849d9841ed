"""Model endpoints in order (PAM_MODELS): a provider that fails before its first word is passed
over unseen, one that fails after it ends the answer with what was said, and a circuit breaker
keeps a dead provider from costing every chat a timeout."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest
from support.client import connected
from support.persistence import until
from support.processes import free_port
from support.tokens import token


def models(*endpoints: tuple[str, str], **extra: Any) -> str:
    """PAM_MODELS for these (name, base URL) pairs, each answering as ``fake-model``."""
    return json.dumps([{"name": n, "base_url": url, "model": "fake-model", **extra} for n, url in endpoints])


async def requests_to(base_url: str) -> int:
    async with httpx.AsyncClient() as http:
        return len((await http.get(base_url.removesuffix("/v1") + "/_requests")).json())


def said(frames: list[dict[str, Any]]) -> str:
    return "".join(f["delta"] for f in frames if f["type"] == "chat_chunk")


def dead_endpoints(fake_openais: Callable[..., str]) -> dict[str, Callable[[], str]]:
    return {
        "rate_limited": lambda: fake_openais("--status", "429", "--retry-after", "30"),
        "server_error": lambda: fake_openais("--status", "500"),
        "hangs": lambda: fake_openais("--hang"),
        "refuses": lambda: f"http://127.0.0.1:{free_port()}/v1",
    }


@pytest.mark.parametrize("failure", ["rate_limited", "server_error", "hangs", "refuses"])
async def test_a_failing_first_endpoint_is_passed_over_and_the_user_sees_one_answer(
    failure, stack, fake_openais, database_url
):
    first, second = dead_endpoints(fake_openais)[failure](), fake_openais()
    stack.persistence(DATABASE_URL=database_url)
    stack.orchestrator(PAM_MODELS=models(("first", first), ("second", second), timeout_seconds=1))
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        frames = await client.chat("how far to Alice Springs?", "u1")
    assert [f["type"] for f in frames][-1] == "chat_response" and frames[-1]["truncated"] is None
    assert frames[-1]["message"] == said(frames) == "Echo: how far to Alice Springs?"
    assert all(f["type"] == "chat_chunk" for f in frames[:-1]) and not frames[0].get("restart")
    assert await requests_to(second) == 1
    db = await asyncpg.connect(database_url)
    try:
        rows = await until(lambda: db.fetch("SELECT endpoint, model FROM analytics_events"), lambda r: len(r) == 1)
    finally:
        await db.close()
    assert (rows[0]["endpoint"], rows[0]["model"]) == ("second", "fake-model")


async def test_the_breaker_opens_after_consecutive_failures_and_probes_after_its_cool_down(stack, fake_openais):
    broken, spare = fake_openais("--status", "500"), fake_openais()
    stack.orchestrator(
        PAM_MODELS=models(("broken", broken), ("spare", spare)),
        PAM_BREAKER_FAILURES="2",
        PAM_BREAKER_COOLDOWN_SECONDS="3",
    )
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        for _ in range(4):
            assert (await client.chat("fuel prices?", "u1"))[-1]["type"] == "chat_response"
        assert await requests_to(broken) == 2  # opened after two: the last two chats went straight to the spare
        assert await requests_to(spare) == 4
        assert await breaker_states(gateway) == {"broken": "open", "spare": "closed"}

        await until(lambda: breaker_states(gateway), lambda s: s.get("broken") == "half_open")
        assert (await client.chat("fuel prices?", "u1"))[-1]["type"] == "chat_response"
        assert await requests_to(broken) == 3  # one probe, which failed: open again
    assert (await breaker_states(gateway))["broken"] == "open"


async def breaker_states(gateway: Any) -> dict[str, str]:
    async with httpx.AsyncClient() as http:
        detail = (await http.get(gateway.http_url("/api/health/detailed"))).json()
    return {m["name"]: m["state"] for o in detail["orchestrators"] for m in o["models"]}


async def test_a_failure_after_the_first_word_ends_the_answer_truncated_without_a_second_one(stack, fake_openais):
    first, second = fake_openais(), fake_openais()
    stack.orchestrator(PAM_MODELS=models(("first", first), ("second", second)))
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        frames = await client.chat("[gap:0.05] [words:10] [cut] tell me a story", "u1")
    final = frames[-1]
    assert final["type"] == "chat_response" and final["truncated"] == "error"
    assert final["message"] == said(frames) and final["message"].startswith("w1 w2")
    assert len(final["message"].split()) < 10
    assert await requests_to(second) == 0


async def test_every_endpoint_down_is_one_llm_error_and_an_open_breaker_costs_no_wait(stack, fake_openais):
    hanging = fake_openais("--hang")
    stack.orchestrator(
        PAM_MODELS=models(("hanging", hanging), timeout_seconds=1),
        PAM_BREAKER_FAILURES="1",
        PAM_OPENAI_MAX_RETRIES="0",
    )
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        first = await client.chat("weather in Broome?", "u1")
        second = await client.chat("weather in Broome?", "u1")
    assert [(f["type"], f["code"], f["details"]) for f in first] == [("error", "llm_error", {"kind": "timeout"})]
    assert [(f["type"], f["code"], f["details"]) for f in second] == [("error", "llm_error", {"kind": "unavailable"})]
    assert await requests_to(hanging) == 1
    assert await breaker_states(gateway) == {"hanging": "open"}
