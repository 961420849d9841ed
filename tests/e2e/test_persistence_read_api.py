"""The gateway's read API, served from persistence over NATS: own data only, admins for analytics."""

from __future__ import annotations

import httpx
import pytest
from support.client import PamClient, chat_frame
from support.persistence import count, until
from support.tokens import token


def bearer(user: str, **claims: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, **claims)}"}


async def chat(gateway, user: str, messages: list[str]) -> None:
    async with await PamClient.connect(gateway.ws_url(f"/ws/{user}?token={token(user)}")) as client:
        await client.recv()
        for text in messages:
            await client.send(chat_frame(text, user))
            assert (await client.answer())[-1]["type"] == "chat_response"


@pytest.fixture
async def chatted(database_url, db, stack):
    """A stack where ``ana`` chatted three times and ``ben`` once, all of it stored."""
    stack.persistence(DATABASE_URL=database_url)
    stack.orchestrator()
    gateway = stack.gateway()
    await chat(gateway, "ana", ["I spent $40 on diesel", "plan a trip to Broome", "what's my budget?"])
    await chat(gateway, "ben", ["hello"])
    await until(lambda: count(db, "messages"), lambda n: n == 8)
    await until(lambda: count(db, "analytics_events"), lambda n: n == 4)
    async with httpx.AsyncClient(base_url=gateway.http_url(""), timeout=10) as http:
        yield http


async def test_a_user_reads_their_own_conversations_and_messages(chatted):
    listed = await chatted.get("/api/v1/conversations", headers=bearer("ana"))
    assert listed.status_code == 200
    [conversation] = listed.json()["conversations"]
    assert conversation["message_count"] == 6 and conversation["preview"] == "I spent $40 on diesel"
    assert conversation["region"] == "Queensland" and listed.json()["next_cursor"] is None

    path = f"/api/v1/conversations/{conversation['id']}/messages"
    messages = (await chatted.get(path, headers=bearer("ana"))).json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert messages[0]["content"] == "I spent $40 on diesel" and messages[1]["intent"] == "expense"

    assert (await chatted.get(path, headers=bearer("ben"))).status_code == 404
    assert (await chatted.get(path + "?limit=0", headers=bearer("ana"))).status_code == 400
    page = await chatted.get("/api/v1/conversations?limit=1", headers=bearer("ben"))
    assert [c["preview"] for c in page.json()["conversations"]] == ["hello"]
    unauthenticated = await chatted.get("/api/v1/conversations")
    assert unauthenticated.status_code == 401 and unauthenticated.json()["error"] == "token_invalid"


async def test_the_analytics_summary_is_for_admin_tokens_only(chatted):
    refused = await chatted.get("/api/v1/analytics/summary", headers=bearer("ana"))
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    for role in ("admin", "service_role"):
        summary = await chatted.get("/api/v1/analytics/summary?days=1", headers=bearer("ops", role=role))
        assert summary.status_code == 200
    body = summary.json()
    assert sum(body["intents"].values()) == 4 and body["intents"]["expense"] == 1
    assert [(d["user_messages"], d["assistant_messages"]) for d in body["messages_per_day"]] == [(4, 4)]
    assert body["total_ms"]["count"] == 4 and body["total_ms"]["p50"] > 0


async def test_without_persistence_the_read_api_answers_503(stack):
    gateway = stack.gateway()
    async with httpx.AsyncClient(base_url=gateway.http_url(""), timeout=10) as http:
        response = await http.get("/api/v1/conversations", headers=bearer("ana"))
    assert response.status_code == 503
    assert response.json()["error"] == "persistence_unavailable" and response.json()["message"]
