"""Resume after reconnect: frames missed while the socket was down arrive, in order, once."""

from __future__ import annotations

import asyncio
import json
import time

import nats
from pam_shared import delivery
from pam_shared.subjects import Subjects
from support.client import connected
from support.tokens import token


async def push(nats_url: str, namespace: str, user_id: str, frame: dict) -> int:
    nc = await nats.connect(nats_url)
    try:
        return await delivery.push(nc, Subjects(namespace), user_id, json.dumps(frame).encode())
    finally:
        await nc.close()


async def test_an_answer_cut_off_mid_stream_is_delivered_whole_on_another_gateway(stack, llm_env):
    stack.orchestrator(**llm_env)
    first, second = stack.gateway(), stack.gateway()
    url = f"/ws/u1?token={token('u1')}"
    dropped = await connected(first.ws_url(url))
    words = "one two three four five six seven eight nine ten"
    await dropped.send(
        {"type": "chat", "message": f'[say:{words}] [gap:0.2] [tool:navigate:{{"page": "/trips"}}]', "message_id": "m1"}
    )
    assert (await dropped.recv())["type"] == "chat_chunk"
    dropped.ws.transport.abort()  # the network drops: no close handshake

    async with await connected(second.ws_url(url)) as client:
        await client.send({"type": "resume", "last_event_id": 0})
        frames = await client.answer(timeout=15)
    actions = [f for f in frames if f["type"] == "ui_actions"]
    assert frames[-1]["type"] == "chat_response" and frames[-1]["message"] == words
    assert frames[-1]["reply_to"] == "m1" and actions and actions[0]["actions"][0]["target"] == "/trips"
    assert actions[0]["event_id"] < frames[-1]["event_id"]


async def test_frames_missed_while_offline_are_replayed_after_a_gateway_restart(stack, nats_url, namespace):
    stack.orchestrator()
    gateway = stack.gateway()
    url = f"/ws/u2?token={token('u2')}"
    async with await connected(gateway.ws_url(url)) as client:
        answer = await client.chat("hello", "u2")
    seen = answer[-1]["event_id"]
    assert isinstance(seen, int) and all("event_id" not in f for f in answer if f["type"] == "chat_chunk")

    missed = [
        await push(
            nats_url,
            namespace,
            "u2",
            {"type": "ui_actions", "actions": [{"type": "navigate", "target": f"/page-{i}", "data": None}]},
        )
        for i in range(3)
    ]
    gateway.stop()
    restarted = stack.gateway()
    async with await connected(restarted.ws_url(url)) as client:
        await client.send({"type": "resume", "last_event_id": seen})
        replayed = [await client.recv() for _ in missed]
        await client.send({"type": "ping"})
        after = await client.recv()
    assert [f["event_id"] for f in replayed] == missed
    assert [f["actions"][0]["target"] for f in replayed] == ["/page-0", "/page-1", "/page-2"]
    assert after["type"] == "pong"  # nothing replayed twice, nothing from before `seen`


async def test_a_resume_beyond_the_window_says_resume_gap(stack, nats_url, namespace):
    window = {"PAM_RESUME_WINDOW_SECONDS": "1"}
    stack.orchestrator(**window)
    gateway = stack.gateway(**window)
    url = f"/ws/u3?token={token('u3')}"
    async with await connected(gateway.ws_url(url)) as client:
        first = (await client.chat("hello", "u3"))[-1]["event_id"]
    await _until_expired(nats_url, namespace, first)
    async with await connected(gateway.ws_url(url)) as client:
        await client.send({"type": "resume", "last_event_id": first - 1})
        gap = await client.recv()
    assert gap["code"] == "resume_gap" and gap["details"]["oldest_event_id"] > first


async def _until_expired(nats_url: str, namespace: str, event_id: int) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    deadline = time.monotonic() + 10
    try:
        while await delivery.oldest_event_id(js, Subjects(namespace)) <= event_id:
            assert time.monotonic() < deadline, "frames never expired"
            await asyncio.sleep(0.2)
    finally:
        await nc.close()


async def test_a_resume_replays_the_answers_to_pending_chats_below_last_event_id(stack, nats_url, namespace):
    """Answers end out of order: the end of a chat still pending may be older than frames seen."""
    stack.orchestrator()
    gateway = stack.gateway()
    url = f"/ws/u4?token={token('u4')}"
    async with await connected(gateway.ws_url(url)) as client:
        answered = (await client.chat("how much was diesel?", "u4", message_id="m1"))[-1]

    async with await connected(gateway.ws_url(url)) as client:
        navigate = {"type": "ui_actions", "actions": [{"type": "navigate", "target": "/x"}]}
        later = await push(nats_url, namespace, "u4", navigate)
        assert (await client.recv())["event_id"] == later > answered["event_id"]  # seen live
        await client.send({"type": "resume", "last_event_id": later, "pending": ["m1"]})
        replayed = await client.recv()
        await client.send({"type": "ping"})
        after = await client.recv()
    assert replayed == answered and after["type"] == "pong"
