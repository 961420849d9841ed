"""The relay in process, against real NATS: replies routed back, silence retried, then ended."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from pam_gateway.dialect import SEED
from pam_gateway.inbox import Inbox, KeptFrames
from pam_gateway.relay import Relay
from pam_shared import delivery, subjects, tracing
from pam_shared.background import Tasks
from pam_shared.subjects import Subjects

END = {subjects.REPLY_KIND_HEADER: subjects.REPLY_END}
TRACE = tracing.new_traceparent()


class Socket:
    """An inbox whose frames the test awaits."""

    def __init__(self, kept: KeptFrames) -> None:
        self.frames: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        self.inbox = Inbox("u-relay", self, SEED, kept)

    def put(self, text: str) -> None:
        self.frames.put_nowait(json.loads(text))

    async def next(self) -> dict[str, object]:
        return await asyncio.wait_for(self.frames.get(), 5)


@pytest.fixture
async def relay(nc: Client, names: Subjects) -> AsyncIterator[Relay]:
    await delivery.ensure_frames_stream(nc.jetstream(), names, 60)
    tasks = Tasks()
    relay = Relay(nc, names, "gw-test", 0.4, KeptFrames(nc.jetstream(), names), tasks)
    await relay.start()
    yield relay
    await relay.stop()
    await tasks.stop()
    assert tasks.healthy


async def worker(nc: Client, names: Subjects, handle) -> list[Msg]:
    """A stand-in orchestrator on the queue group; returns the requests it got, as they come."""
    seen: list[Msg] = []

    async def on_request(msg: Msg) -> None:
        seen.append(msg)
        await handle(msg)

    await nc.subscribe(names.chat_request, queue=names.orchestrator_queue, cb=on_request)
    await nc.flush()
    return seen


async def test_an_answer_is_routed_to_the_socket_that_asked(nc, names, relay):
    async def answers(msg: Msg) -> None:
        await nc.publish(msg.reply, b'{"type":"chat_chunk","n":1}')
        await nc.publish(msg.reply, b'{"type":"chat_response","n":2}', headers=END)

    await worker(nc, names, answers)
    socket = Socket(relay.kept)
    await relay.send(socket.inbox, "chat-1", b"{}", "m1", TRACE)
    assert [(await socket.next())["n"] for _ in range(2)] == [1, 2]
    await asyncio.wait_for(relay.idle.wait(), 1)
    assert relay.pending == {}


async def test_a_last_chunk_riding_with_the_end_reaches_the_socket_as_its_own_frame_first(nc, names, relay):
    async def answers(msg: Msg) -> None:
        headers = {**END, subjects.LEADING_CHUNK_HEADER: "1", subjects.EVENT_ID_HEADER: "7"}
        await nc.publish(msg.reply, b'{"type":"chat_chunk","n":1}\n{"type":"chat_response","n":2}', headers=headers)

    await worker(nc, names, answers)
    socket = Socket(relay.kept)
    await relay.send(socket.inbox, "chat-1", b"{}", "m1", TRACE)
    chunk, end = await socket.next(), await socket.next()
    assert (chunk, end) == ({"type": "chat_chunk", "n": 1}, {"event_id": 7, "type": "chat_response", "n": 2})


async def test_no_orchestrator_is_an_immediate_kept_error(nc, names, relay):
    socket = Socket(relay.kept)
    await relay.send(socket.inbox, "chat-1", b"{}", "m1", TRACE)
    frame = await socket.next()
    assert frame["code"] == "orchestrator_unavailable" and isinstance(frame["event_id"], int)


async def test_a_silent_worker_gets_one_retry_then_the_chat_times_out(nc, names, relay):
    async def swallows(msg: Msg) -> None:
        pass

    seen = await worker(nc, names, swallows)
    socket = Socket(relay.kept)
    await relay.send(socket.inbox, "chat-1", b"{}", "m1", TRACE)
    frame = await socket.next()
    assert (frame["code"], frame["reply_to"]) == ("timeout", "m1")
    assert len(seen) == 2 and all(subjects.RESTART_HEADER not in (m.headers or {}) for m in seen)


async def test_a_retry_after_a_partial_answer_asks_for_a_restart(nc, names, relay):
    async def streams_then_dies(msg: Msg) -> None:
        await nc.publish(msg.reply, b'{"type":"chat_chunk","n":1}')

    seen = await worker(nc, names, streams_then_dies)
    socket = Socket(relay.kept)
    await relay.send(socket.inbox, "chat-1", b"{}", "m1", TRACE)
    frames = [await socket.next() for _ in range(3)]
    assert [f.get("n") for f in frames[:2]] == [1, 1] and frames[2]["code"] == "worker_lost"
    assert [subjects.RESTART_HEADER in (m.headers or {}) for m in seen] == [False, True]
