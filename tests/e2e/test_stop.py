"""Stop: a ``cancel`` from any socket of the user (or REST) ends the answer where it runs, closes the
model's stream, keeps what was said as a stopped answer (billed), and resumes like any end."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import httpx
from support.client import PamClient, connected
from support.persistence import until
from support.tokens import token

LONG = "[gap:0.1] [words:200] tell me the long way round"  # 20 s of talking


async def fake_json(fake_openai: str, path: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        return (await http.get(fake_openai.removesuffix("/v1") + path)).json()


async def first_words(client: PamClient, message_id: str, words: int = 3) -> list[dict[str, Any]]:
    """Send a long chat and read until ``words`` chunks of it have arrived."""
    await client.send({"type": "chat", "message": LONG, "message_id": message_id})
    frames: list[dict[str, Any]] = []
    while sum(1 for f in frames if f["type"] == "chat_chunk") < words:
        frames.append(await client.recv())
    return frames


async def stopped(client: PamClient) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rest of the answer and the ``cancelled`` acknowledgement, in whichever order they come."""
    frames: list[dict[str, Any]] = []
    ack = None
    while ack is None or not frames or frames[-1]["type"] not in ("chat_response", "error"):
        frame = await client.recv()
        if frame["type"] == "cancelled":
            ack = frame
        else:
            frames.append(frame)
    return frames, ack


def said(frames: list[dict[str, Any]]) -> str:
    return "".join(f["delta"] for f in frames if f["type"] == "chat_chunk")


async def test_a_stop_mid_stream_closes_the_models_stream_and_keeps_the_partial_answer(
    stack, llm_env, fake_openai, database_url
):
    stack.persistence(DATABASE_URL=database_url)
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/ann?token={token('ann')}")) as client:
        frames = await first_words(client, "m-1")
        stopped_at = time.time()
        await client.send({"type": "cancel", "message_id": "m-1"})
        rest, ack = await stopped(client)
    frames += rest
    end = frames[-1]
    assert end["type"] == "chat_response" and end["truncated"] == "stopped" and end["reply_to"] == "m-1"
    assert end["message"] == said(frames) and 3 <= len(end["message"].split()) < 50
    assert ack == {"type": "cancelled", "message_id": "m-1", "status": "stopped"}
    (closed,) = await until(lambda: fake_json(fake_openai, "/_aborted"), lambda a: len(a) == 1)
    assert closed["at"] - stopped_at < 2  # the provider stopped generating at once
    db = await asyncpg.connect(database_url)
    try:
        rows = await until(
            lambda: db.fetch(
                "SELECT m.content, m.state, a.tokens_in, a.tokens_out FROM messages m "
                "JOIN analytics_events a ON a.message_id = m.id WHERE m.role = 'assistant'"
            ),
            lambda r: len(r) == 1,
        )
    finally:
        await db.close()
    assert (rows[0]["content"], rows[0]["state"]) == (end["message"], "stopped")
    assert rows[0]["tokens_in"] > 0 and rows[0]["tokens_out"] == -(-len(end["message"]) // 4)


async def test_a_stop_from_another_socket_on_another_gateway_stops_the_answer(stack, llm_env):
    stack.orchestrator(**llm_env)
    stack.orchestrator(**llm_env)
    first, second = stack.gateway(), stack.gateway()
    async with (
        await connected(first.ws_url(f"/ws/ann?token={token('ann')}")) as asking,
        await connected(second.ws_url(f"/ws/ann?token={token('ann')}")) as other_tab,
    ):
        frames = await first_words(asking, "m-2")
        await other_tab.send({"type": "cancel", "message_id": "m-2"})
        assert await other_tab.recv() == {"type": "cancelled", "message_id": "m-2", "status": "stopped"}
        frames += await asking.answer()
    assert frames[-1]["type"] == "chat_response" and frames[-1]["truncated"] == "stopped"
    assert frames[-1]["message"] == said(frames)


async def test_a_stopped_answer_resumes_as_its_stopped_end_not_the_full_answer(stack, llm_env):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    url = gateway.ws_url(f"/ws/ann?token={token('ann')}")
    async with await connected(url) as client:
        frames = await first_words(client, "m-3")
        await client.send({"type": "cancel", "message_id": "m-3"})
        frames += (await stopped(client))[0]
    async with await connected(url) as again:
        await again.send({"type": "resume", "last_event_id": 0, "pending": ["m-3"]})
        replayed = await again.answer()
    assert [f["type"] for f in replayed] == ["chat_response"]
    assert replayed[0]["truncated"] == "stopped" and replayed[0]["reply_to"] == "m-3"
    assert replayed[0]["message"] == said(frames) and len(replayed[0]["message"].split()) < 50


async def test_a_stop_of_an_ended_or_someone_elses_chat_changes_nothing(stack, llm_env):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    async with (
        await connected(gateway.ws_url(f"/ws/ann?token={token('ann')}")) as ann,
        await connected(gateway.ws_url(f"/ws/bob?token={token('bob')}")) as bob,
    ):
        done = await ann.chat("short one", message_id="m-4")
        await ann.send({"type": "cancel", "message_id": "m-4"})
        refused = await ann.recv()
        bobs = await first_words(bob, "m-5")
        await ann.send({"type": "cancel", "message_id": "m-5"})
        foreign = await ann.recv()
        await bob.send({"type": "cancel", "message_id": "m-5"})  # bob stops his own, so the test is short
        bobs += (await stopped(bob))[0]
    assert done[-1]["type"] == "chat_response" and done[-1]["truncated"] is None
    for frame, message_id in ((refused, "m-4"), (foreign, "m-5")):
        assert frame["type"] == "error" and frame["code"] == "nothing_to_cancel"
        assert frame["details"] == {"message_id": message_id} and frame.get("reply_to") is None
    assert bobs[-1]["truncated"] == "stopped"  # ann's attempt did not stop it: bob's own did


async def test_rest_stops_an_answer_streaming_on_a_socket(stack, llm_env):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/ann?token={token('ann')}")) as client:
        frames = await first_words(client, "m-6")
        async with httpx.AsyncClient() as http:
            url = gateway.http_url("/api/v1/chats/m-6/cancel")
            foreign = await http.post(url, headers={"Authorization": f"Bearer {token('bob')}"})
            stop = await http.post(url, headers={"Authorization": f"Bearer {token('ann')}"})
            again = await http.post(url, headers={"Authorization": f"Bearer {token('ann')}"})
            anonymous = await http.post(url)
        frames += await client.answer()
    assert foreign.status_code == 404 and foreign.json()["error_code"] == "nothing_to_cancel"
    assert stop.status_code == 200
    assert stop.json() == {"type": "cancelled", "message_id": "m-6", "status": "stopped"}
    assert again.status_code == 404 and anonymous.status_code == 401
    assert frames[-1]["truncated"] == "stopped"
