"""A user's privacy settings, as they see them: chosen over HTTP on one gateway, obeyed by the
next chat on any gateway.

Storage off: their chats are answered, resumable and remembered within the conversation, yet
nothing of them reaches PostgreSQL.  Analytics off: their analytics rows carry nothing that
leads back to them.  Each test ends its chats with one of another user, who lets us keep
everything: once that chat is stored and the consumer has nothing left, persistence has
handled every event of the user under test.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from pam_shared.subjects import Subjects, user_token
from support.client import connected
from support.persistence import consumer_settled, count, until
from support.tokens import token

PRIVATE = "hermit"
OTHER = "neighbour"
FIRST = "[say:Cairns is 1,700 km away.] how far to Cairns from the quandong hut"
FIRST_ANSWER = "Cairns is 1,700 km away."


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url.split(","))
    yield nc.jetstream()
    await nc.close()


@pytest.fixture
def names(namespace: str) -> Subjects:
    return Subjects(namespace)


@pytest.fixture
def two_gateways(stack, database_url, llm_env):
    """Persistence, an orchestrator on the fake model, and two gateways on one namespace."""
    stack.persistence(DATABASE_URL=database_url)
    stack.orchestrator(**llm_env)
    return stack.gateway(), stack.gateway()


async def privacy(gateway, user: str, change: dict[str, Any] | str | None = None, jwt: str | None = None):
    """GET the user's settings, or PUT ``change`` (a dict, or a raw body)."""
    url = gateway.http_url("/api/v1/users/me/privacy")
    headers = {"Authorization": f"Bearer {jwt or token(user)}"}
    async with httpx.AsyncClient(timeout=10) as http:
        if change is None:
            return await http.get(url, headers=headers)
        body = change if isinstance(change, str) else json.dumps(change)
        return await http.put(url, headers=headers, content=body)


async def chosen(gateway, user: str, change: dict[str, Any]) -> dict[str, Any]:
    response = await privacy(gateway, user, change)
    assert response.status_code == 200, response.text
    return response.json()


async def chat(gateway, user: str, text: str, message_id: str | None = None) -> list[dict[str, Any]]:
    """One chat on its own socket: every frame up to its end, which must be an answer."""
    async with await connected(gateway.ws_url(f"/ws/{user}?token={token(user)}")) as client:
        frames = await client.chat(text, user, message_id=message_id or uuid.uuid4().hex)
    assert frames[-1]["type"] == "chat_response", frames
    return frames


async def drained(gateway, db: asyncpg.Connection, js: JetStreamContext, names: Subjects) -> None:
    """Persistence has handled every event recorded before now (see the module's docstring)."""
    marker = uuid.uuid4().hex
    await chat(gateway, OTHER, "[say:Noted.] keep this one", marker)
    await until(lambda: count(db, "messages", "reply_to = $1", marker), lambda n: n == 1)
    await until(lambda: consumer_settled(js, names), bool)


async def rows_holding(db: asyncpg.Connection, *texts: str) -> list[str]:
    """Every row of every table that holds one of ``texts`` in any column."""
    tables = await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    found = []
    for table in (t["tablename"] for t in tables):
        for row in await db.fetch(f'SELECT * FROM "{table}"'):
            text = " ".join(v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in row.values())
            found += [f"{table}: {text}"] if any(t in text for t in texts) else []
    return found


async def recorded(js: JetStreamContext, names: Subjects, user: str) -> dict[str, int]:
    """How many events of each kind the events stream holds about ``user``."""
    info = await js.stream_info(names.events_stream, subjects_filter=names.events_of(user))
    return {subject.split(".")[-2]: n for subject, n in (info.state.subjects or {}).items()}


async def last_conversation(fake_openai: str) -> list[dict[str, Any]]:
    """The turns of the last request the model got, without its system prompt."""
    async with httpx.AsyncClient() as http:
        seen = (await http.get(fake_openai.removesuffix("/v1") + "/_requests")).json()
    return [m for m in seen[-1]["messages"] if m["role"] != "system"]


async def test_with_storage_off_chats_are_answered_resumed_and_remembered_but_never_stored(
    two_gateways, db, js, names, fake_openai
):
    a, b = two_gateways
    assert await chosen(a, PRIVATE, {"store_conversations": False}) == {"store_conversations": False, "analytics": True}

    first = await chat(b, PRIVATE, FIRST, "m1")
    assert {f["type"] for f in first[:-1]} == {"chat_chunk"}  # streamed
    assert "".join(f["delta"] for f in first[:-1]) == FIRST_ANSWER == first[-1]["message"]
    assert first[-1]["reply_to"] == "m1"
    async with await connected(a.ws_url(f"/ws/{PRIVATE}?token={token(PRIVATE)}")) as client:
        await client.send({"type": "resume", "last_event_id": 0})
        resumed = await client.answer()
    assert resumed[-1] == first[-1]

    await chat(b, PRIVATE, "[say:About two days.] and by train?")
    assert await last_conversation(fake_openai) == [
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": FIRST_ANSWER},
        {"role": "user", "content": "[say:About two days.] and by train?"},
    ]

    await drained(a, db, js, names)
    for table, column in (("messages", "user_id"), ("conversations", "user_id"), ("users", "id")):
        assert await count(db, table, f"{column} = $1", PRIVATE) == 0, table
    assert await rows_holding(db, "quandong", "Cairns", "by train", "two days") == []
    assert await count(db, "analytics_events", "user_id = $1", PRIVATE) == 2
    assert await recorded(js, names, PRIVATE) == {"analytics": 2}  # not even the events stream has the words


async def test_with_analytics_off_no_analytics_row_identifies_the_user(two_gateways, db, js, names):
    a, b = two_gateways
    assert await chosen(a, PRIVATE, {"analytics": False}) == {"store_conversations": True, "analytics": False}
    await chat(b, PRIVATE, FIRST, "m1")
    await drained(a, db, js, names)

    messages = await db.fetch("SELECT id, session_id, trace_id, content FROM messages WHERE user_id = $1", PRIVATE)
    assert sorted(m["content"] for m in messages) == sorted([FIRST, FIRST_ANSWER])
    anonymous = await db.fetch("SELECT * FROM analytics_events WHERE user_id = ''")
    assert len(anonymous) == 1
    row = anonymous[0]
    assert (row["session_id"], row["message_id"], row["trace_id"]) == ("", "", None)
    assert row["created_at"] == row["created_at"].replace(minute=0, second=0, microsecond=0)
    assert row["tokens_out"] and row["intent"] == "trip"  # what analytics are for is still there
    identifying = {PRIVATE, "m1"} | {m[k] for m in messages for k in ("id", "session_id", "trace_id") if m[k]}
    every_row = [str(dict(r)) for r in await db.fetch("SELECT * FROM analytics_events")]
    assert [r for r in every_row if any(i in r for i in identifying)] == []
    assert await count(db, "analytics_events", "user_id = $1", OTHER) == 1  # the others' analytics are whole


async def test_settings_read_back_as_changed_and_bad_changes_are_refused(two_gateways):
    a, b = two_gateways
    assert (await privacy(b, PRIVATE)).json() == {"store_conversations": True, "analytics": True}
    assert await chosen(a, PRIVATE, {"analytics": False}) == {"store_conversations": True, "analytics": False}
    assert await chosen(a, PRIVATE, {"store_conversations": False}) == {
        "store_conversations": False,
        "analytics": False,
    }
    assert (await privacy(b, PRIVATE)).json() == {"store_conversations": False, "analytics": False}
    assert (await privacy(b, OTHER)).json() == {"store_conversations": True, "analytics": True}

    for bad in ({"store_conversations": False, "sell_my_data": True}, {"analytics": "no"}, "{not json"):
        refused = await privacy(a, PRIVATE, bad)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error_code"] == "invalid_body" and refused.json()["error"] == "invalid_body"
        assert refused.json()["message"]
    unsigned = await privacy(a, PRIVATE, {"analytics": True}, jwt="not-a-token")
    assert unsigned.status_code == 401 and unsigned.json()["error_code"] == "token_invalid"
    assert (
        await privacy(b, PRIVATE, jwt=token(PRIVATE, secret="someone-elses-secret-0123456789abcdef"))
    ).status_code == 401
    assert (await privacy(a, PRIVATE)).json() == {"store_conversations": False, "analytics": False}


async def test_storage_switched_back_on_keeps_the_next_chat_on_another_gateway(two_gateways, db, js, names):
    a, b = two_gateways
    await chosen(a, PRIVATE, {"store_conversations": False})
    await chat(b, PRIVATE, "[say:Not kept.] first words of the quandong hut")
    await chosen(b, PRIVATE, {"store_conversations": True})
    await chat(a, PRIVATE, "[say:Kept.] second words of the wattle camp")
    await drained(b, db, js, names)

    stored = await db.fetch("SELECT role, content FROM messages WHERE user_id = $1 ORDER BY created_at", PRIVATE)
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", "[say:Kept.] second words of the wattle camp"),
        ("assistant", "Kept."),
    ]
    assert await rows_holding(db, "quandong", "Not kept") == []
    assert await count(db, "conversations", "user_id = $1", PRIVATE) == 1


async def test_the_recent_turns_of_an_unstored_conversation_expire_with_it(
    stack, database_url, llm_env, fake_openai, js, names
):
    short = {"PAM_CONVERSATION_IDLE_MINUTES": "0.05"}  # a 3 s conversation
    stack.persistence(DATABASE_URL=database_url, **short)
    stack.orchestrator(**llm_env, **short)
    gateway = stack.gateway(**short)
    await chosen(gateway, PRIVATE, {"store_conversations": False})
    await chat(gateway, PRIVATE, FIRST)
    await chat(gateway, PRIVATE, "[say:About two days.] and by train?")
    assert len(await last_conversation(fake_openai)) == 3  # remembered, while the conversation lasts

    turns = await js.key_value(names.turns_bucket)
    await until(lambda: _entry(turns, user_token(PRIVATE)), lambda entry: entry is None, timeout=15)
    await chat(gateway, PRIVATE, "[say:From Cairns?] and the fare?")
    assert await last_conversation(fake_openai) == [{"role": "user", "content": "[say:From Cairns?] and the fare?"}]


async def _entry(bucket, key: str) -> bytes | None:
    try:
        return (await bucket.get(key)).value
    except KeyNotFoundError:
        return None


async def test_two_changes_at_once_each_keep_the_other_field(stack, database_url):
    stack.persistence(DATABASE_URL=database_url)
    gateway = stack.gateway()
    user = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=gateway.http_url(""), timeout=10) as http:
        headers = {"Authorization": f"Bearer {token(user)}"}
        for _ in range(5):
            both = await asyncio.gather(
                http.put("/api/v1/users/me/privacy", json={"store_conversations": False}, headers=headers),
                http.put("/api/v1/users/me/privacy", json={"analytics": False}, headers=headers),
            )
            assert [r.status_code for r in both] == [200, 200]
            settings = (await http.get("/api/v1/users/me/privacy", headers=headers)).json()
            assert settings == {"store_conversations": False, "analytics": False}
            reset = {"store_conversations": True, "analytics": True}
            assert (await http.put("/api/v1/users/me/privacy", json=reset, headers=headers)).json() == reset
