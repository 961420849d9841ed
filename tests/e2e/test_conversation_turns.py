"""A follow-up reaches the model with the turn just before it, however soon it is sent.

Persistence runs with a 2 s flush interval: it stores an exchange seconds after the
answer ended, as a busy persistence does, so the turns can only come from the
orchestrators' own bucket (``pam_orchestrator.turns``) unless that entry is gone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import nats
import pytest
from pam_shared.subjects import Subjects, user_token
from support.client import PamClient, chat_frame
from support.persistence import count, until
from support.tokens import token

SLOW_PERSISTENCE = {"PAM_PERSIST_FLUSH_MS": "2000"}
FIRST = "[say:Cairns is 1,700 km away.] how far to Cairns"
FIRST_ANSWER = "Cairns is 1,700 km away."


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


async def said(client: PamClient, user: str, message: str) -> None:
    await client.send(chat_frame(message, user))
    assert (await client.answer())[-1]["type"] == "chat_response"


async def last_conversation(fake_openai: str) -> list[dict[str, Any]]:
    """The turns of the last request the model got, without its system prompt."""
    async with httpx.AsyncClient() as http:
        seen = (await http.get(fake_openai.removesuffix("/v1") + "/_requests")).json()
    return [m for m in seen[-1]["messages"] if m["role"] != "system"]


def turns(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in pairs]


async def test_a_follow_up_sent_the_moment_the_answer_ends_sees_that_turn(database_url, stack, llm_env, fake_openai):
    stack.persistence(DATABASE_URL=database_url, **SLOW_PERSISTENCE)
    stack.orchestrator(**llm_env)
    stack.orchestrator(**llm_env)  # the follow-up may go to the other one
    gateway = stack.gateway()
    async with await PamClient.connect(gateway.ws_url(f"/ws/nomad?token={token('nomad')}")) as client:
        await client.recv()
        await said(client, "nomad", FIRST)
        await said(client, "nomad", "and by train?")
    assert await last_conversation(fake_openai) == turns(
        ("user", FIRST), ("assistant", FIRST_ANSWER), ("user", "and by train?")
    )


async def test_a_cold_conversation_gets_its_turns_from_persistence_and_keeps_them(
    database_url, db, stack, llm_env, fake_openai, nats_url, namespace
):
    stack.persistence(DATABASE_URL=database_url, **SLOW_PERSISTENCE)
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    async with await PamClient.connect(gateway.ws_url(f"/ws/nomad?token={token('nomad')}")) as client:
        await client.recv()
        await said(client, "nomad", FIRST)
        await until(lambda: count(db, "messages"), lambda n: n == 2)  # the first exchange is stored
        await forget_recent_turns(nats_url, Subjects(namespace), "nomad")
        await said(client, "nomad", "[say:About two days.] and by train?")
        assert await last_conversation(fake_openai) == turns(
            ("user", FIRST), ("assistant", FIRST_ANSWER), ("user", "[say:About two days.] and by train?")
        )
        await said(client, "nomad", "and the fare?")  # at once: persistence has not stored the second yet
    assert await last_conversation(fake_openai) == turns(
        ("user", FIRST),
        ("assistant", FIRST_ANSWER),
        ("user", "[say:About two days.] and by train?"),
        ("assistant", "About two days."),
        ("user", "and the fare?"),
    )


async def forget_recent_turns(nats_url: str, names: Subjects, user: str) -> None:
    """What an expired entry looks like to the next chat: nothing."""
    nc = await nats.connect(nats_url.split(","))
    try:
        bucket = await nc.jetstream().key_value(names.turns_bucket)
        await bucket.delete(user_token(user))
    finally:
        await nc.close()
