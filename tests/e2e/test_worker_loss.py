"""A worker that dies mid-answer costs the user latency, not an error, and never the gateway's sweep.

The dying workers are played by the test on the orchestrators' queue group, so the moment
of death is exact: after a chunk and a kept ``ui_actions`` frame, or after keeping the end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from pam_shared import delivery, subjects
from pam_shared.internal import ChatRequest, chat_request_decoder
from pam_shared.protocol import ChatChunk, ChatResponse, UiAction, UiActions, encoder
from pam_shared.subjects import Subjects
from support.client import connected
from support.tokens import token

PROGRESS = {subjects.REPLY_KIND_HEADER: subjects.REPLY_PROGRESS}
Behaviour = Callable[[Client, Subjects, Msg, ChatRequest], Awaitable[None]]


@contextlib.asynccontextmanager
async def fake_worker(nats_url: str, namespace: str, behaviour: Behaviour) -> AsyncIterator[Client]:
    """Joins the orchestrators' queue group and answers every request with ``behaviour``."""
    names = Subjects(namespace)
    nc = await nats.connect(nats_url)

    async def on_request(msg: Msg) -> None:
        await behaviour(nc, names, msg, chat_request_decoder.decode(msg.data))

    await nc.subscribe(names.chat_request, queue=names.orchestrator_queue, cb=on_request)
    await nc.flush()
    try:
        yield nc
    finally:
        await nc.close()


async def stream_a_chunk(nc: Client, msg: Msg, request: ChatRequest) -> None:
    chunk = ChatChunk(message_id="partial", seq=0, delta="Half an answ", reply_to=request.message_id)
    await nc.publish(msg.reply, encoder.encode(chunk))


async def keep(nc: Client, names: Subjects, msg: Msg, request: ChatRequest, frame: bytes, send: bool) -> None:
    event_id = await delivery.keep_answer_frame(nc, names, request.user_id, request.chat_id, frame)
    if send:
        await nc.publish(msg.reply, frame, headers={subjects.EVENT_ID_HEADER: event_id or ""})


def actions_frame(request: ChatRequest) -> bytes:
    action = UiAction(type="navigate", target="/trips")
    return encoder.encode(UiActions(actions=[action], message_id="partial", reply_to=request.message_id))


async def test_a_worker_dead_after_kept_actions_is_replaced_and_the_sweep_lives_on(stack, nats_url, namespace):
    gateway = stack.gateway(PAM_REPLY_TIMEOUT_SECONDS="1.5")
    streamed, replacement_ready = asyncio.Event(), asyncio.Event()

    async def dies_after_actions(nc: Client, names: Subjects, msg: Msg, request: ChatRequest) -> None:
        await stream_a_chunk(nc, msg, request)
        await keep(nc, names, msg, request, actions_frame(request), send=True)
        streamed.set()
        while not replacement_ready.is_set():  # alive until another worker can take over, then gone
            await nc.publish(msg.reply, b"", headers=PROGRESS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(replacement_ready.wait(), 0.3)
        await nc.close()

    async with (
        fake_worker(nats_url, namespace, dies_after_actions),
        await connected(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client,
    ):
        await client.send({"type": "chat", "message": "plan a trip to Cairns", "message_id": "m1"})
        await streamed.wait()
        orchestrator = await asyncio.to_thread(stack.orchestrator)
        replacement_ready.set()
        frames = await client.answer(timeout=20)

        restarted = [f for f in frames if f["type"] == "chat_chunk" and f.get("restart")]
        assert frames[-1]["type"] == "chat_response" and frames[-1]["reply_to"] == "m1"
        assert [f["seq"] for f in restarted] == [0] and frames.index(restarted[0]) > 1

        await asyncio.to_thread(orchestrator.stop)

        async def swallows(nc: Client, names: Subjects, msg: Msg, request: ChatRequest) -> None:
            pass

        async with fake_worker(nats_url, namespace, swallows):
            later = await client.chat("anyone?", message_id="m2", timeout=20)
    assert [(f["type"], f["code"], f["reply_to"]) for f in later] == [("error", "timeout", "m2")]


async def test_a_worker_dead_after_keeping_its_end_has_that_end_delivered(stack, nats_url, namespace):
    gateway = stack.gateway(PAM_REPLY_TIMEOUT_SECONDS="1.5")

    async def dies_after_keeping_the_end(nc: Client, names: Subjects, msg: Msg, request: ChatRequest) -> None:
        await stream_a_chunk(nc, msg, request)
        end = ChatResponse(
            message="Half an answer, whole",
            timestamp="2026-12-01T00:00:00.000Z",
            message_id="partial",
            intent="fuel",
            reply_to=request.message_id,
        )
        await keep(nc, names, msg, request, encoder.encode(end), send=False)
        await nc.close()

    async with (
        fake_worker(nats_url, namespace, dies_after_keeping_the_end),
        await connected(gateway.ws_url(f"/ws/u2?token={token('u2')}")) as client,
    ):
        frames = await client.chat("how much diesel?", message_id="m1", timeout=20)
    assert [f["type"] for f in frames] == ["chat_chunk", "chat_response"]
    assert frames[-1]["message"] == "Half an answer, whole" and isinstance(frames[-1]["event_id"], int)


async def test_worker_lost_only_when_the_retry_dies_too(stack, nats_url, namespace):
    gateway = stack.gateway(PAM_REPLY_TIMEOUT_SECONDS="1.5")

    async def always_dies(nc: Client, names: Subjects, msg: Msg, request: ChatRequest) -> None:
        await stream_a_chunk(nc, msg, request)

    async with (
        fake_worker(nats_url, namespace, always_dies),
        await connected(gateway.ws_url(f"/ws/u3?token={token('u3')}")) as client,
    ):
        frames = await client.chat("hello", message_id="m1", timeout=20)
    assert [(f["type"], f.get("restart", False)) for f in frames[:-1]] == [("chat_chunk", False)] * 2
    assert (frames[-1]["type"], frames[-1]["code"]) == ("error", "worker_lost")
