"""A second message while an answer to the same user streams: enqueue (the default), reject or
interrupt, decided cluster-wide whichever socket and gateway each chat came through."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import httpx
from support.client import PamClient, connected
from support.tokens import token

SLOW = "[gap:0.1] [words:30] the first question"  # 3 s of talking


async def requests_seen_by(fake_openai: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        return (await http.get(fake_openai.removesuffix("/v1") + "/_requests")).json()


async def started(client: PamClient, message: str, message_id: str) -> list[dict[str, Any]]:
    """Send a chat and read until its first chunk."""
    await client.send({"type": "chat", "message": message, "message_id": message_id})
    frames = [await client.recv()]
    while frames[-1]["type"] != "chat_chunk":
        frames.append(await client.recv())
    return frames


async def until_cancelled(client: PamClient) -> list[dict[str, Any]]:
    """Frames until both the ``cancelled`` acknowledgement and the chat's end have come (a
    ``queued`` refresh may come between them)."""
    frames = [await client.recv()]
    while not {"cancelled", "chat_response"} <= {f["type"] for f in frames}:
        frames.append(await client.recv())
    return frames


def said(frames: list[dict[str, Any]]) -> str:
    return "".join(f["delta"] for f in frames if f["type"] == "chat_chunk")


def conversation(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in body["messages"] if m["role"] != "system"]


async def two_tabs(stack: Any, llm_env: dict[str, str], **env: str) -> tuple[str, str]:
    stack.orchestrator(**llm_env, **env)
    stack.orchestrator(**llm_env, **env)
    first, second = stack.gateway(), stack.gateway()
    url = f"/ws/ann?token={token('ann')}"
    return first.ws_url(url), second.ws_url(url)


async def test_a_second_message_waits_its_turn_and_sees_the_first_exchange(stack, llm_env, fake_openai):
    one, two = await two_tabs(stack, llm_env)
    async with await connected(one) as tab1, await connected(two) as tab2:
        first = await started(tab1, SLOW, "a")
        await tab2.send({"type": "chat", "message": "and the second?", "message_id": "b"})
        queued = await tab2.recv()
        first += await tab1.answer()
        second = await tab2.answer()
    assert queued == {"type": "queued", "position": 1, "reply_to": "b"}
    assert first[-1]["type"] == "chat_response" and first[-1]["truncated"] is None
    assert second[-1]["type"] == "chat_response" and second[-1]["message"] == "Echo: and the second?"
    bodies = await requests_seen_by(fake_openai)
    assert [conversation(b)[-1][1] for b in bodies] == [SLOW, "and the second?"]
    assert conversation(bodies[1]) == [("user", SLOW), ("assistant", first[-1]["message"]), ("user", "and the second?")]


async def test_reject_refuses_the_second_message_with_busy_and_loses_nothing(stack, llm_env, fake_openai):
    one, two = await two_tabs(stack, llm_env, PAM_DOUBLE_TEXTING="reject")
    async with await connected(one) as tab1, await connected(two) as tab2:
        first = await started(tab1, SLOW, "a")
        refused = await tab2.chat("and the second?", message_id="b")
        first += await tab1.answer()
        later = await tab2.chat("and the second?", message_id="b2")
    assert [(f["type"], f["code"], f["details"]) for f in refused] == [("error", "busy", {"answering": "a"})]
    assert first[-1]["type"] == "chat_response" and first[-1]["truncated"] is None
    assert later[-1]["type"] == "chat_response"
    assert len(await requests_seen_by(fake_openai)) == 2  # the refused one never reached the model


async def test_interrupt_stops_the_first_keeps_its_partial_and_answers_the_second(stack, llm_env, fake_openai):
    one, two = await two_tabs(stack, llm_env)
    async with await connected(one) as tab1, await connected(two) as tab2:
        first = await started(tab1, SLOW, "a")
        await tab2.send({"type": "chat", "message": "actually, stop", "message_id": "b", "on_busy": "interrupt"})
        first += await tab1.answer()
        second = await tab2.answer()
    assert first[-1]["type"] == "chat_response" and first[-1]["truncated"] == "stopped"
    partial = first[-1]["message"]
    assert partial == said(first) and len(partial.split()) < 30
    assert second[-1]["type"] == "chat_response" and second[-1]["message"] == "Echo: actually, stop"
    bodies = await requests_seen_by(fake_openai)
    assert conversation(bodies[-1]) == [("user", SLOW), ("assistant", partial), ("user", "actually, stop")]


async def test_a_queued_chat_can_be_cancelled_and_the_answer_before_it_goes_on(stack, llm_env, fake_openai):
    one, two = await two_tabs(stack, llm_env)
    async with await connected(one) as tab1, await connected(two) as tab2:
        first = await started(tab1, SLOW, "a")
        await tab2.send({"type": "chat", "message": "never mind this one", "message_id": "b"})
        assert (await tab2.recv())["type"] == "queued"
        await tab2.send({"type": "cancel", "message_id": "b"})
        dropped = await until_cancelled(tab2)
        first += await tab1.answer()
    ack = next(f for f in dropped if f["type"] == "cancelled")
    end = next(f for f in dropped if f["type"] == "chat_response")
    assert ack == {"type": "cancelled", "message_id": "b", "status": "dequeued"}
    assert end["reply_to"] == "b" and end["truncated"] == "stopped" and end["message"] == "", dropped
    assert first[-1]["type"] == "chat_response" and first[-1]["truncated"] is None
    assert [conversation(b)[-1][1] for b in await requests_seen_by(fake_openai)] == [SLOW]


async def test_an_orchestrator_killed_while_answering_never_leaves_the_conversation_blocked(stack, llm_env):
    holder = stack.orchestrator(**llm_env, PAM_ANSWER_DEADLINE_SECONDS="8")
    gateway = stack.gateway(PAM_REPLY_TIMEOUT_SECONDS="2")
    url = gateway.ws_url(f"/ws/ann?token={token('ann')}")
    async with await connected(url) as tab1, await connected(url) as tab2:
        await started(tab1, "[gap:0.1] [words:200] a long story", "a")  # longer than the deadline
        stack.orchestrator(**llm_env, PAM_ANSWER_DEADLINE_SECONDS="8")
        holder.signal(signal.SIGKILL)
        await tab2.send({"type": "chat", "message": "hello again", "message_id": "b"})
        first = await tab1.answer(timeout=30)
        second = await tab2.answer(timeout=30)
    # The first chat is retried on the other orchestrator (its hold is its own), the second waits for it.
    assert first[-1]["type"] == "chat_response" and any(f.get("restart") for f in first)
    assert second[-1]["type"] == "chat_response" and second[-1]["message"] == "Echo: hello again"


async def test_a_chat_queued_behind_a_killed_orchestrator_takes_its_turn_over_within_seconds(stack, llm_env):
    """The holder's orchestrator and gateway die together, so no retry ever takes the hold over:
    the queued chat must find it dead itself, long before the hold's 65 s (deadline 60 + 5)."""
    holder, doomed = stack.orchestrator(**llm_env), stack.gateway()
    ann = f"/ws/ann?token={token('ann')}"
    async with await connected(doomed.ws_url(ann)) as tab1:
        await started(tab1, "[gap:0.1] [words:200] a long story", "a")
        stack.orchestrator(**llm_env)
        survivor = stack.gateway()
        holder.kill()  # SIGKILL, and reaped: its connections are closed
        doomed.kill()
    async with await connected(survivor.ws_url(ann)) as tab2:
        sent = time.monotonic()
        await tab2.send({"type": "chat", "message": "hello again", "message_id": "b"})
        second = await asyncio.wait_for(tab2.answer(), 20)
    assert second[-1]["type"] == "chat_response" and second[-1]["message"] == "Echo: hello again"
    assert {"type": "queued", "position": 1, "reply_to": "b"} in second  # it did wait behind the dead hold
    assert time.monotonic() - sent < 20


async def test_a_draining_orchestrator_keeps_its_turn_until_its_answer_ends(stack, llm_env, fake_openai):
    """A holder that is stopping (SIGTERM) finishes its answer first: the chat queued behind it asks
    it, hears it still answers, and waits (it is not taken for dead)."""
    draining = stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    url = gateway.ws_url(f"/ws/ann?token={token('ann')}")
    story = "[gap:0.1] [words:50] the first question"  # 5 s of talking: more than two heartbeats
    async with await connected(url) as tab1, await connected(url) as tab2:
        first = await started(tab1, story, "a")
        stack.orchestrator(**llm_env)
        draining.signal(signal.SIGTERM)
        await tab2.send({"type": "chat", "message": "and the second?", "message_id": "b"})
        first += await tab1.answer()
        second = await tab2.answer()
    assert first[-1]["type"] == "chat_response" and first[-1]["truncated"] is None
    assert not any(f.get("restart") for f in first)
    assert second[-1]["message"] == "Echo: and the second?"
    bodies = await requests_seen_by(fake_openai)
    exchange = [("user", story), ("assistant", first[-1]["message"])]
    assert conversation(bodies[-1]) == [*exchange, ("user", "and the second?")]  # it waited for the first
