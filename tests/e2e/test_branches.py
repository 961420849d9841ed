"""Regenerate and edit make branches instead of overwriting: the earlier answer or question stays as
a sibling, the next prompt follows the branch the user is on, and the read API returns the tree."""

from __future__ import annotations

from typing import Any

import httpx
from support.client import PamClient, connected
from support.persistence import until
from support.tokens import token


async def prompts(fake_openai: str) -> list[list[tuple[str, str]]]:
    """Each request's conversation as the model saw it (system messages left out)."""
    async with httpx.AsyncClient() as http:
        bodies = (await http.get(fake_openai.removesuffix("/v1") + "/_requests")).json()
    return [[(m["role"], m["content"]) for m in b["messages"] if m["role"] != "system"] for b in bodies]


async def ended(client: PamClient, frame: dict[str, Any]) -> dict[str, Any]:
    await client.send(frame)
    end = (await client.answer())[-1]
    assert end["type"] == "chat_response", end
    return end


async def tree(gateway: Any, user: str, count: int) -> list[dict[str, Any]]:
    """The user's latest conversation as the read API gives it, once ``count`` messages are stored."""
    headers = {"Authorization": f"Bearer {token(user)}"}
    async with httpx.AsyncClient(headers=headers) as http:

        async def messages() -> list[dict[str, Any]]:
            conversations = (await http.get(gateway.http_url("/api/v1/conversations"))).json()["conversations"]
            if not conversations:
                return []
            url = gateway.http_url(f"/api/v1/conversations/{conversations[0]['id']}/messages")
            return (await http.get(url)).json()["messages"]

        return await until(messages, lambda found: len(found) == count)


Q1 = "[nth] where can we camp tonight?"


async def test_regenerate_keeps_the_earlier_answer_as_a_sibling_and_goes_on_from_the_new_one(
    stack, llm_env, fake_openai, database_url
):
    stack.persistence(DATABASE_URL=database_url)
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/ann?token={token('ann')}")) as client:
        first = await ended(client, {"type": "chat", "message": Q1, "message_id": "q1"})
        again = await ended(client, {"type": "regenerate", "answer_id": first["message_id"], "message_id": "r1"})
        later = await ended(client, {"type": "chat", "message": "[nth] and tomorrow?", "message_id": "q2"})
    assert (first["message"], again["message"], later["message"]) == ("Answer 1", "Answer 2", "Answer 3")
    assert again["reply_to"] == "r1"
    assert await prompts(fake_openai) == [
        [("user", Q1)],
        [("user", Q1)],  # the same turn again, without the answer it replaces
        [("user", Q1), ("assistant", "Answer 2"), ("user", "[nth] and tomorrow?")],
    ]
    q1, a1, a2, q2, a3 = await tree(gateway, "ann", 5)
    assert [m["content"] for m in (q1, a1, a2, q2, a3)] == [
        Q1,
        "Answer 1",
        "Answer 2",
        "[nth] and tomorrow?",
        "Answer 3",
    ]
    assert q1["parent_id"] is None and a1["parent_id"] == a2["parent_id"] == q1["id"]
    assert a1["siblings"] == [a2["id"]] and a2["siblings"] == [a1["id"]]
    assert q2["parent_id"] == a2["id"] and a3["parent_id"] == q2["id"]
    assert [m["current"] for m in (q1, a1, a2, q2, a3)] == [True, False, True, True, True]


async def test_edit_replaces_a_question_on_a_new_branch_and_the_next_prompt_follows_it(
    stack, llm_env, fake_openai, database_url
):
    stack.persistence(DATABASE_URL=database_url)
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/ann?token={token('ann')}")) as client:
        await ended(client, {"type": "chat", "message": Q1, "message_id": "q1"})
        await ended(client, {"type": "chat", "message": "[nth] how much is diesel?", "message_id": "q2"})
        edit = {"type": "edit", "user_message_id": "q2", "message": "[nth] how much is petrol?", "message_id": "q3"}
        edited = await ended(client, edit)
        await ended(client, {"type": "chat", "message": "[nth] thanks", "message_id": "q4"})
    assert edited["message"] == "Answer 3" and edited["reply_to"] == "q3"
    assert (await prompts(fake_openai))[2:] == [
        [("user", Q1), ("assistant", "Answer 1"), ("user", "[nth] how much is petrol?")],
        [
            ("user", Q1),
            ("assistant", "Answer 1"),
            ("user", "[nth] how much is petrol?"),
            ("assistant", "Answer 3"),
            ("user", "[nth] thanks"),
        ],
    ]
    q1, a1, diesel, a2, petrol, a3, thanks, a4 = await tree(gateway, "ann", 8)
    assert diesel["parent_id"] == petrol["parent_id"] == a1["id"]
    assert diesel["siblings"] == [petrol["id"]] and petrol["siblings"] == [diesel["id"]]
    assert a2["parent_id"] == diesel["id"] and a3["parent_id"] == petrol["id"] and thanks["parent_id"] == a3["id"]
    assert [m["current"] for m in (q1, a1, diesel, a2, petrol, a3, thanks, a4)] == [
        True, True, False, False, True, True, True, True
    ]  # fmt: skip


async def test_a_turn_not_in_the_conversation_cannot_be_answered_again(stack, llm_env, fake_openai):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/ann?token={token('ann')}")) as client:
        refused = await client.chat("unused", message_id="x")  # a normal chat first, so there is a conversation
        await client.send({"type": "regenerate", "answer_id": "nobody-knows-this", "message_id": "r"})
        frames = await client.answer()
    assert refused[-1]["type"] == "chat_response"
    assert [(f["type"], f["code"], f["details"]) for f in frames] == [
        ("error", "not_in_conversation", {"message_id": "nobody-knows-this"})
    ]
    assert len(await prompts(fake_openai)) == 1
