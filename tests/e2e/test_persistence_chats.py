"""Chats through the whole stack end up in PostgreSQL exactly once, even when persistence was down."""

from __future__ import annotations

import asyncio

import httpx
from support.client import PamClient, chat_frame
from support.persistence import count, until
from support.tokens import token

USERS, CHATS_EACH = 10, 10


async def chat(gateway, user: str, messages: list[str]) -> list[dict]:
    """Send each message as ``user`` (a signed-in, recorded session) and return the final frames."""
    async with await PamClient.connect(gateway.ws_url(f"/ws/{user}?token={token(user)}")) as client:
        assert (await client.recv())["type"] == "connection"
        finals = []
        for i, text in enumerate(messages):
            await client.send(chat_frame(text, user, message_id=f"{user}-{i}"))
            finals.append((await client.answer())[-1])
        return finals


async def test_chats_while_persistence_is_stopped_are_all_stored_exactly_once(database_url, db, stack):
    persistence = stack.persistence(DATABASE_URL=database_url)
    stack.orchestrator()
    gateway = stack.gateway()
    persistence.stop()

    users = [f"traveller-{u}" for u in range(USERS)]
    finals = await asyncio.gather(*(chat(gateway, u, [f"fuel stop {i}" for i in range(CHATS_EACH)]) for u in users))
    assert [f["type"] for answers in finals for f in answers] == ["chat_response"] * USERS * CHATS_EACH
    assert await count(db, "messages") == 0

    persistence.start().wait_for("ready: consuming")
    total = USERS * CHATS_EACH
    await until(lambda: count(db, "messages"), lambda n: n == 2 * total, timeout=20)
    await until(lambda: count(db, "analytics_events"), lambda n: n == total)

    rows = await db.fetch("SELECT role, coalesce(client_message_id, reply_to) AS asked FROM messages")
    expected = sorted(f"{u}-{i}" for u in users for i in range(CHATS_EACH))
    assert sorted(r["asked"] for r in rows if r["role"] == "user") == expected
    assert sorted(r["asked"] for r in rows if r["role"] == "assistant") == expected
    per_user = await db.fetch("SELECT user_id, count(*) AS n FROM conversations GROUP BY user_id")
    assert sorted((r["user_id"], r["n"]) for r in per_user) == [(u, 1) for u in sorted(users)]


async def test_the_model_sees_the_earlier_turns_of_the_conversation(database_url, db, stack, llm_env, fake_openai):
    stack.persistence(DATABASE_URL=database_url)
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    async with await PamClient.connect(gateway.ws_url(f"/ws/nomad?token={token('nomad')}")) as client:
        await client.recv()
        await client.send(chat_frame("[say:Cairns is 1,700 km away.] how far to Cairns", "nomad"))
        assert (await client.answer())[-1]["type"] == "chat_response"
        await until(lambda: count(db, "messages"), lambda n: n == 2)  # the first exchange is stored
        await client.send(chat_frame("and by train?", "nomad"))
        assert (await client.answer())[-1]["type"] == "chat_response"

    async with httpx.AsyncClient() as http:
        seen = (await http.get(fake_openai.removesuffix("/v1") + "/_requests")).json()
    conversation = [m for m in seen[-1]["messages"] if m["role"] != "system"]
    assert conversation == [
        {"role": "user", "content": "[say:Cairns is 1,700 km away.] how far to Cairns"},
        {"role": "assistant", "content": "Cairns is 1,700 km away."},
        {"role": "user", "content": "and by train?"},
    ]
