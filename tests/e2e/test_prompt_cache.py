"""The prompt is laid out for the providers' prefix caches, and what they read from the cache is recorded."""

from __future__ import annotations

import json

import asyncpg
import httpx
from support.client import PamClient, chat_frame, connected
from support.persistence import until
from support.processes import free_port
from support.tokens import token


async def requests_seen_by(fake_openai: str) -> list[dict]:
    async with httpx.AsyncClient() as http:
        return (await http.get(fake_openai.removesuffix("/v1") + "/_requests")).json()


def stable_prefix(body: dict) -> str:
    """What the provider caches first: the tools, then the messages up to the per-chat context."""
    messages = body["messages"]
    return json.dumps({"tools": body["tools"], "messages": messages[: len(messages) - 2]})


async def test_two_chats_of_one_user_share_the_whole_stable_prefix(stack, llm_env, fake_openai):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/nomad?token={token('nomad')}")) as client:
        await answered(client, chat_frame("cheapest diesel near me?", "nomad"))
        later = chat_frame("and a campground for tonight?", "nomad")
        later["context"] = {**later["context"], "region": "Northern Territory", "current_page": "/trips"}
        await answered(client, later)
    first, second = await requests_seen_by(fake_openai)
    assert first["messages"][0] == second["messages"][0] and first["messages"][0]["role"] == "system"
    assert "Queensland" not in first["messages"][0]["content"]  # nothing of one chat in the shared part
    assert first["tools"] == second["tools"] and first["tools"]
    # The second chat's prompt is the first one's stable part, then the first exchange, then its own context.
    assert stable_prefix(second).startswith(stable_prefix(first)[:-2])
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "system", "user"]
    assert "Northern Territory" in second["messages"][-2]["content"] and "/trips" in second["messages"][-2]["content"]
    assert "Queensland" in first["messages"][-2]["content"]


async def answered(client: PamClient, frame: dict) -> None:
    await client.send(frame)
    assert (await client.answer())[-1]["type"] == "chat_response"


async def test_cached_prompt_tokens_are_recorded_in_analytics_and_metrics(stack, llm_env, database_url):
    port = free_port()
    stack.persistence(DATABASE_URL=database_url)
    stack.orchestrator(**llm_env, PAM_METRICS_PORT=str(port))
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        assert (await client.chat("[usage:1124:4:1024] fuel near Katherine?", "u1"))[-1]["type"] == "chat_response"
    db = await asyncpg.connect(database_url)
    try:
        rows = await until(
            lambda: db.fetch("SELECT tokens_in, tokens_out, cached_tokens, endpoint FROM analytics_events"),
            lambda r: len(r) == 1,
        )
    finally:
        await db.close()
    (row,) = rows
    assert (row["tokens_in"], row["tokens_out"], row["cached_tokens"]) == (1124, 4, 1024)
    assert row["endpoint"].endswith("/fake-model")
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    assert 'pam_orchestrator_tokens_total{direction="cached"} 1024.0' in metrics
