"""The spine: a socket's chat goes through NATS to an orchestrator and streams back."""

from __future__ import annotations

import json

import httpx
from support.client import PamClient, chat_frame, connected
from support.tokens import token


async def requests_seen_by(fake_openai: str) -> list[dict]:
    async with httpx.AsyncClient() as http:
        return (await http.get(fake_openai.removesuffix("/v1") + "/_requests")).json()


async def test_llm_answer_streams_in_order_then_ends_with_the_whole_text(stack, llm_env):
    stack.orchestrator(**llm_env, PAM_CHUNK_WINDOW_MS="0")  # one chunk per token
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/user-1?token={token('user-1')}")) as client:
        await client.send(chat_frame("how far is it to Cairns by road", "user-1", message_id="m-1"))
        frames = await client.answer()

    chunks, final = frames[:-1], frames[-1]
    assert final["type"] == "chat_response"
    assert final["message"] == "Echo: how far is it to Cairns by road"
    assert final["reply_to"] == "m-1" and final["intent"] == "trip" and final["timestamp"]
    assert [c["type"] for c in chunks] == ["chat_chunk"] * len(chunks) and len(chunks) > 3
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    assert "".join(c["delta"] for c in chunks) == final["message"]
    assert {c["message_id"] for c in chunks} == {final["message_id"]}
    assert {c["reply_to"] for c in chunks} == {"m-1"}


async def test_token_bursts_are_merged_and_a_steady_stream_is_not(stack, llm_env):
    stack.orchestrator(**llm_env, PAM_CHUNK_WINDOW_MS="30")
    gateway = stack.gateway()
    words = "a b c d e f g h i j k l m n o p"
    async with await connected(gateway.ws_url(f"/ws/user-1?token={token('user-1')}")) as client:
        burst = await client.chat(f"[say:{words}]")
        steady = await client.chat(f"[say:{words}] [gap:0.06]")
    for frames in (burst, steady):
        chunks = [f["delta"] for f in frames if f["type"] == "chat_chunk"]
        assert "".join(chunks) == frames[-1]["message"] == words
    assert len([f for f in burst if f["type"] == "chat_chunk"]) <= 3
    assert len([f for f in steady if f["type"] == "chat_chunk"]) == 16


async def test_context_shapes_the_prompt_the_model_sees(stack, llm_env, fake_openai):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/api/v1/pam/ws?token={token('user-2')}")) as client:
        await client.send(chat_frame("cheapest diesel near me?", "user-2"))
        assert (await client.answer())[-1]["type"] == "chat_response"

    seen = await requests_seen_by(fake_openai)
    context = seen[-1]["messages"][-2]
    assert context["role"] == "system"
    assert "Queensland" in context["content"] and "/expenses" in context["content"]
    assert "fuel" in context["content"]  # this message's intent and the session's recent intents
    assert seen[-1]["messages"][-1] == {"role": "user", "content": "cheapest diesel near me?"}
    assert seen[-1]["stream"] is True and seen[-1]["model"] == "fake-model"


async def test_tool_calls_become_ui_actions_before_the_final_answer(stack, llm_env):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    navigate = '[tool:navigate:{"page": "/trips"}]'
    expense = '[tool:create_expense:{"amount": 42.5, "category": "fuel"}]'
    async with await connected(gateway.ws_url(f"/ws/user-3?token={token('user-3')}")) as client:
        await client.send(chat_frame(f"log my fuel and show trips [say:Done.] {navigate} {expense}", "user-3"))
        frames = await client.answer()

    types = [f["type"] for f in frames]
    assert types[-1] == "chat_response" and types.count("ui_actions") == 1
    actions = frames[types.index("ui_actions")]["actions"]
    assert actions == [
        {"type": "navigate", "target": "/trips", "data": None},
        {"type": "create", "target": "expense", "data": {"amount": 42.5, "category": "fuel"}},
    ]
    assert frames[-1]["message"] == "Done."


async def test_recorded_streams_of_providers_that_failed_before_reach_the_socket_right(stack, llm_env):
    """Ollama's parallel calls all at index 0 were merged into none; llama.cpp's error line was an empty answer."""
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/user-3?token={token('user-3')}")) as client:
        ollama = await client.chat("log my fuel and show trips [replay:ollama-parallel-tools]")
        llamacpp = await client.chat("a very long question [replay:llamacpp-error-line]")

    types = [f["type"] for f in ollama]
    assert types[-1] == "chat_response" and ollama[-1]["message"] == "Sure."
    assert ollama[types.index("ui_actions")]["actions"] == [
        {"type": "navigate", "target": "/trips", "data": None},
        {"type": "create", "target": "expense", "data": {"amount": 42.5, "category": "fuel"}},
    ]
    final = llamacpp[-1]
    assert (final["type"], final["code"], final["details"]) == ("error", "llm_error", {"kind": "api_error"})


async def test_an_answer_of_only_actions_still_says_something(stack, llm_env):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/user-4?token={token('user-4')}")) as client:
        await client.send(chat_frame('[say:] [tool:navigate:{"page": "/budget"}]', "user-4"))
        frames = await client.answer()
    assert frames[-1]["type"] == "chat_response"
    assert "/budget" in frames[-1]["message"]


async def test_demo_session_gets_the_offline_engine_with_an_expense_action(stack, llm_env, fake_openai):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    async with await PamClient.connect(gateway.ws_url("/ws/visitor?token=demo-token")) as client:
        hello = await client.recv()
        assert hello["mode"] == "demo" and hello["user_id"].startswith("demo:") and hello["session_id"]
        await client.send(chat_frame("I spent $23.40 on groceries", "visitor"))
        frames = await client.answer()

    assert frames[-1]["type"] == "chat_response" and frames[-1]["intent"] == "expense"
    assert "demo mode" in frames[-1]["message"]
    action = next(f for f in frames if f["type"] == "ui_actions")["actions"][0]
    assert action["type"] == "create" and action["target"] == "expense" and action["data"]["amount"] == 23.4
    assert await requests_seen_by(fake_openai) == []  # no LLM call for demo


async def test_no_api_key_means_the_offline_engine_answers_live_users(stack):
    stack.orchestrator()  # no OPENAI_API_KEY
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/user-5?token={token('user-5')}")) as client:
        frames = await client.chat("will it rain in Darwin tomorrow?", "user-5")
    assert frames[-1]["type"] == "chat_response" and frames[-1]["intent"] == "weather"
    assert "offline mode" in frames[-1]["message"]
    assert len(frames) > 2  # streamed in pieces, like a real answer


async def test_a_client_that_knows_only_the_seed_types_can_read_the_answer(stack):
    """Seed clients look for chat_response and ignore unknown types such as chat_chunk."""
    stack.orchestrator()
    gateway = stack.gateway()
    async with await connected(gateway.ws_url("/ws/u?token=demo-token")) as client:
        await client.send(json.dumps(chat_frame("hello", "u")))
        frames = await client.answer()
    final = [f for f in frames if f["type"] == "chat_response"]
    assert len(final) == 1 and final[0]["message"].startswith("👋")
