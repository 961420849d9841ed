"""The conversation holds against real NATS: one chat answered per user at a time, cluster-wide."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

import msgspec
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from pam_orchestrator.holds import Busy, Hold, Holds
from pam_shared.internal import ChatRequest, HoldQuery, HoldReply
from pam_shared.protocol import ChatContext
from pam_shared.subjects import Subjects, user_token
from support.jetstream_calls import JetStreamCalls
from support.persistence import until


def chat(user: str = "ann", turn: int | None = None) -> ChatRequest:
    request = ChatRequest(uuid.uuid4().hex, "s1", user, False, "hello", ChatContext(), time.time(), uuid.uuid4().hex)
    return msgspec.structs.replace(request, turn=turn)


async def holds(nc: Client, names: Subjects, instance: str, deadline: float = 30, heartbeat: float = 0.2) -> Holds:
    made = Holds(nc, names, instance, deadline, heartbeat=heartbeat)
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
    await one.release(first, "answer-1", revision)
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
        await mine.release(first, "answer-1", taken)

    first = chat()  # the holder's chat, released by the "stop"
    later = await asyncio.wait_for(mine.take(chat(), "answer-2", "interrupt", nothing, stop), 5)
    assert stopped == ["answer-1"] and later > taken


async def test_with_the_hint_of_the_last_release_a_chat_takes_and_gives_up_its_turn_in_two_calls(
    nc: Client, names: Subjects
):
    one, two = await holds(nc, names, "o1"), await holds(nc, names, "o2")
    async with JetStreamCalls(nc, names.answering_bucket, also=names.released("ann")) as calls:
        first = chat()
        hint = await one.release(first, "answer-1", await one.take(first, "answer-1", "enqueue", nothing, nothing))
        assert len(await calls.taken()) == 3  # no hint: a read and a write; the release a write
        second = chat(turn=hint)  # on another orchestrator: the hint is the bucket's, not the process's
        hint = await two.release(second, "answer-2", await two.take(second, "answer-2", "enqueue", nothing, nothing))
        kv = f"$KV.{names.answering_bucket}.{user_token('ann')}"
        assert await calls.taken() == [kv, kv]  # nobody waited: nothing read, nothing announced
        stale = chat(turn=hint - 1)
        assert await one.take(stale, "answer-3", "reject", nothing, nothing)
        assert len(await calls.taken()) == 3  # a failed write, a read, a write
        with pytest.raises(Busy):  # a hint is no pass: the turn is held
            await two.take(chat(turn=hint), "answer-4", "reject", nothing, nothing)


async def test_a_queued_chat_is_woken_by_the_release_though_its_heartbeat_is_long(nc: Client, names: Subjects):
    one, two = await holds(nc, names, "o1"), await holds(nc, names, "o2", heartbeat=60)
    first, second = chat(), chat()
    revision = await one.take(first, "answer-1", "enqueue", nothing, nothing)
    waiting = asyncio.create_task(two.take(second, "answer-2", "enqueue", nothing, nothing))
    kv = await nc.jetstream().key_value(names.answering_bucket)

    async def holder() -> Hold:
        return msgspec.json.decode((await kv.get(user_token("ann"))).value or b"", type=Hold)

    await until(holder, lambda hold: hold.awaited)  # the waiter has said it waits
    async with JetStreamCalls(nc, names.answering_bucket, also=names.released("ann")) as calls:
        await one.release(first, "answer-1", revision)
        assert await asyncio.wait_for(waiting, 5)  # the hold lasts 35 s and the heartbeat 60: only the release wakes it
        assert names.released("ann") in await calls.taken()


async def test_a_turn_left_deleted_by_an_older_release_is_taken_in_a_read_and_a_write(nc: Client, names: Subjects):
    one = await holds(nc, names, "o1")
    kv = await nc.jetstream().key_value(names.answering_bucket)
    await kv.put(user_token("ann"), b"{}")
    await kv.delete(user_token("ann"))
    async with JetStreamCalls(nc, names.answering_bucket) as calls:
        assert await one.take(chat(), "answer-1", "reject", nothing, nothing)
        assert len(await calls.taken()) == 2


async def test_a_hold_whose_orchestrator_is_gone_is_taken_over_after_a_heartbeat(nc: Client, names: Subjects):
    """Its orchestrator has no subscription left (killed): no responders, so the hold is not waited out."""
    mine = await holds(nc, names, "o1")
    kv = await nc.jetstream().key_value(names.answering_bucket)
    dead = Hold("c-dead", "m-dead", "answer-dead", "o-killed", until=time.time() + 60, asked=True)
    await kv.put(user_token("ann"), msgspec.json.encode(dead))
    assert await asyncio.wait_for(mine.take(chat(), "answer-1", "enqueue", nothing, nothing), 5)


async def test_a_holder_is_asked_and_kept_while_it_answers_then_taken_over_once_it_says_it_has_ended(
    nc: Client, names: Subjects
):
    mine = await holds(nc, names, "o1")
    kv = await nc.jetstream().key_value(names.answering_bucket)
    held = Hold("c-held", "m-held", "answer-held", "o-busy", until=time.time() + 60, asked=True)
    await kv.put(user_token("ann"), msgspec.json.encode(held))
    asked: list[HoldQuery] = []
    twice, still = asyncio.Event(), True

    async def holder(msg: Msg) -> None:
        asked.append(msgspec.json.decode(msg.data, type=HoldQuery))
        if len(asked) == 2:
            twice.set()
        await msg.respond(msgspec.json.encode(HoldReply(answering=still)))

    await nc.subscribe(names.holding_at("o-busy"), cb=holder)
    waiting = asyncio.create_task(mine.take(chat(), "answer-1", "enqueue", nothing, nothing))
    await asyncio.wait_for(twice.wait(), 5)
    assert not waiting.done() and asked[0] == HoldQuery("ann", "answer-held")
    still = False  # restarted under the same name, say, or ended without giving the turn up
    assert await asyncio.wait_for(waiting, 5)


async def test_a_holder_missing_from_nats_once_is_asked_again_before_its_turn_is_taken(nc: Client, names: Subjects):
    """Once may be a reconnect (its subscription not yet back): only a second miss takes the turn over."""
    mine = await holds(nc, names, "o1")
    kv = await nc.jetstream().key_value(names.answering_bucket)
    held = Hold("c-held", "m-held", "answer-held", "o-back", until=time.time() + 60, asked=True)
    await kv.put(user_token("ann"), msgspec.json.encode(held))
    missed, asked, twice = MissedOnce(), 0, asyncio.Event()

    async def holder(msg: Msg) -> None:
        nonlocal asked
        asked += 1
        if asked == 2:
            twice.set()
        await msg.respond(msgspec.json.encode(HoldReply(answering=True)))

    logger = logging.getLogger("pam.orchestrator.holds")
    logger.addHandler(missed)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        waiting = asyncio.create_task(mine.take(chat(), "answer-1", "enqueue", nothing, nothing))
        await asyncio.wait_for(missed.seen.wait(), 5)
        await nc.subscribe(names.holding_at("o-back"), cb=holder)  # reconnected
        await asyncio.wait_for(twice.wait(), 5)
        assert not waiting.done()
    finally:
        logger.removeHandler(missed)
        logger.setLevel(level)
    waiting.cancel()


class MissedOnce(logging.Handler):
    """Sets ``seen`` when a waiter has found the holder's orchestrator missing from NATS."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "not on NATS" in record.getMessage():
            self.seen.set()


async def test_a_third_chat_is_woken_by_the_release_of_the_second_though_its_heartbeat_is_long(
    nc: Client, names: Subjects
):
    """The second took its turn marked (others wait behind it): the third, finding it so, writes
    nothing, and the second's release is announced all the same."""
    one, two, three = [await holds(nc, names, name, heartbeat=60) for name in ("o1", "o2", "o3")]
    first, second, third = chat(), chat(), chat()
    revision = await one.take(first, "answer-1", "enqueue", nothing, nothing)
    queued = {"two": asyncio.Event(), "three": asyncio.Event()}

    def announcer(name: str) -> Callable[[int], Awaitable[None]]:
        async def announce(position: int) -> None:
            queued[name].set()

        return announce

    taking = asyncio.create_task(two.take(second, "answer-2", "enqueue", announcer("two"), nothing))
    await asyncio.wait_for(queued["two"].wait(), 5)
    waiting = asyncio.create_task(three.take(third, "answer-3", "enqueue", announcer("three"), nothing))
    await asyncio.wait_for(queued["three"].wait(), 5)
    await one.release(first, "answer-1", revision)
    second_turn = await asyncio.wait_for(taking, 5)
    assert not waiting.done()
    await two.release(second, "answer-2", second_turn)
    assert await asyncio.wait_for(waiting, 5) > second_turn  # the hold lasts 35 s and the heartbeat 60
