"""An answer is bounded in length and in time; either bound ends it cleanly, keeping what was said."""

from __future__ import annotations

import time

import asyncpg
import httpx
from support.client import connected
from support.persistence import until
from support.tokens import token


async def requests_seen_by(fake_openai: str) -> list[dict]:
    async with httpx.AsyncClient() as http:
        return (await http.get(fake_openai.removesuffix("/v1") + "/_requests")).json()


def said(frames: list[dict]) -> str:
    return "".join(f["delta"] for f in frames if f["type"] == "chat_chunk")


async def test_the_model_may_write_only_so_many_tokens_and_a_long_answer_is_marked(stack, llm_env, fake_openai):
    stack.orchestrator(**llm_env, PAM_MAX_COMPLETION_TOKENS="5")
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        short = (await client.chat("hello", "u1"))[-1]
        frames = await client.chat("[words:20] tell me everything", "u1")
    assert short["type"] == "chat_response" and short["truncated"] is None
    final = frames[-1]
    assert final["type"] == "chat_response" and final["truncated"] == "length"
    assert final["message"] == said(frames) == "w1 w2 w3 w4 w5 "
    assert [body["max_completion_tokens"] for body in await requests_seen_by(fake_openai)] == [5, 5]


async def test_an_answer_past_its_deadline_ends_with_what_was_said_and_is_stored(stack, llm_env, database_url):
    stack.persistence(DATABASE_URL=database_url)
    stack.orchestrator(**llm_env, PAM_ANSWER_DEADLINE_SECONDS="2")  # the first word well inside it, even loaded
    gateway = stack.gateway()
    started = time.monotonic()
    async with await connected(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        frames = await client.chat("[gap:0.1] [words:100] a long story", "u1")  # 10 s of talking
    assert time.monotonic() - started < 6
    final = frames[-1]
    assert final["type"] == "chat_response" and final["truncated"] == "deadline"
    assert final["message"] == said(frames) and 3 <= len(final["message"].split()) < 100
    db = await asyncpg.connect(database_url)
    try:
        stored = await until(
            lambda: db.fetch("SELECT content FROM messages WHERE role = 'assistant'"), lambda rows: len(rows) == 1
        )
    finally:
        await db.close()
    assert stored[0]["content"] == final["message"]


async def test_a_model_silent_past_the_deadline_is_an_llm_timeout(stack, llm_env):
    stack.orchestrator(**llm_env, PAM_ANSWER_DEADLINE_SECONDS="1")
    gateway = stack.gateway()
    started = time.monotonic()
    async with await connected(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        final = (await client.chat("[delay:4] anyone there?", "u1"))[-1]
    assert time.monotonic() - started < 3.5
    assert (final["type"], final["code"], final["details"]) == ("error", "llm_error", {"kind": "timeout"})
