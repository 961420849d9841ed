"""The conversation holds against real NATS: one chat answered per user at a time, cluster-wide."""

from __future__ import annotations

import asyncio
import time
import uuid

import msgspec
import pytest
from nats.aio.client import Client
from pam_orchestrator.holds import Busy, Hold, Holds
from pam_shared.internal import ChatRequest
from pam_shared.protocol import ChatContext
from pam_shared.subjects import Subjects, user_token


def chat(user: str = "ann") -> ChatRequest:
    return ChatRequest(uuid.uuid4().hex, "s1", user, False, "hello", ChatContext(), time.time(), uuid.uuid4().hex)


async def holds(nc: Client, names: Subjects, instance: str, deadline: float = 30) -> Holds:
    made = Holds(nc, names, instance, deadline, heartbeat=0.2)
    await made.start()
    return made


async def nothing(*_: object) -> None:
    return None


async def test_of_two_orchestrators_one_holds_and_the_other_queues_until_the_release(nc: Client, names: Subjects):
    one, two = await holds(nc, names, "o1"), await holds(nc, names, "o2")
    first, second = chat(), chat()
    revision = await one.take(first, "answer-1", "enqueue", nothing, nothing)
    positions: list[int] = []
    queued = asyncio.Event()

    async def announce(position: int) -> None:
        positions.append(position)
        queued.set()

    waiting = asyncio.create_task(two.take(second, "answer-2", "enqueue", announce, nothing))
    await asyncio.wait_for(queued.wait(), 5)
    assert not waiting.done() and positions[0] == 1
    found = await two.find("ann", "answer-1")
    assert found is not None and found.orchestrator == "o1" and (await two.find("ann", second.message_id or ""))
    assert await two.find("bob", "answer-1") is None
    await one.release(first, revision)
    assert await asyncio.wait_for(waiting, 5) > revision
    with pytest.raises(Busy) as refused:
        await one.take(chat(), "answer-3", "reject", nothing, nothing)
    assert refused.value.holder.answer_id == "answer-2"
    assert await one.take(chat("bob"), "answer-4", "reject", nothing, nothing)  # another user is not held up


async def test_an_abandoned_hold_is_taken_over_and_interrupt_stops_the_holder(nc: Client, names: Subjects):
    mine = await holds(nc, names, "o1")
    kv = await nc.jetstream().key_value(names.answering_bucket)
    dead = Hold("c-dead", "m-dead", "answer-dead", "o-gone", until=time.time() - 1)
    await kv.put(user_token("ann"), msgspec.json.encode(dead))
    taken = await asyncio.wait_for(mine.take(chat(), "answer-1", "reject", nothing, nothing), 5)
    stopped: list[str] = []

    async def stop(holder: Hold) -> None:
        stopped.append(holder.answer_id)
        await mine.release(first, taken)

    first = chat()  # the holder's chat, released by the "stop"
    later = await asyncio.wait_for(mine.take(chat(), "answer-2", "interrupt", nothing, stop), 5)
    assert stopped == ["answer-1"] and later > taken
