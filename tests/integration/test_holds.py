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
from pam_orchestrator.holds import FREE, Busy, Hold, Holds
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


async def test_with_the_hint_of_the_last_hold_a_chat_takes_its_turn_in_one_call_and_gives_it_up_in_none(
    nc: Client, names: Subjects
):
    one, two = await holds(nc, names, "o1"), await holds(nc, names, "o2")
    async with JetStreamCalls(nc, names.answering_bucket, also=names.released("ann")) as calls:
        first = chat()
        hint = await one.release(first, "answer-1", await one.take(first, "answer-1", "enqueue", nothing, nothing))
        assert len(await calls.taken()) == 2  # no hint: a read and a write; the release nothing
        second = chat(turn=hint)  # on another orchestrator: the hint is the bucket's, not the process's
        hint = await two.release(second, "answer-2", await two.take(second, "answer-2", "enqueue", nothing, nothing))
        kv = f"$KV.{names.answering_bucket}.{user_token('ann')}"
        assert await calls.taken() == [kv]  # nobody waited: nothing read, nothing written but the take
        stale = chat(turn=(hint or 0) - 1)
        assert await one.take(stale, "answer-3", "reject", nothing, nothing)  # answer-2 has ended, o2 says
        assert len(await calls.taken()) == 3  # a failed write, a read, a write
        with pytest.raises(Busy):  # a hint is no pass: the turn is held
            await two.take(chat(turn=hint), "answer-4", "reject", nothing, nothing)


async def test_a_chat_without_the_hint_finds_the_last_answer_ended_at_once_not_after_its_hold(
    nc: Client, names: Subjects
):
    """Through another gateway, say: the holder's orchestrator says it has given the turn up,
    so neither a ``reject`` chat is refused nor an ``enqueue`` one waits (the hold lasts 35 s,
    the heartbeat 60)."""
    one, two = await holds(nc, names, "o1", heartbeat=60), await holds(nc, names, "o2", heartbeat=60)
    first = chat()
    await one.release(first, "answer-1", await one.take(first, "answer-1", "enqueue", nothing, nothing))
    second = chat()
    taken = await asyncio.wait_for(two.take(second, "answer-2", "reject", nothing, nothing), 5)
    await two.release(second, "answer-2", taken)
    assert await asyncio.wait_for(one.take(chat(), "answer-3", "enqueue", nothing, nothing), 5) > taken


async def test_a_stopped_chat_that_took_the_turn_is_said_to_have_ended(nc: Client, names: Subjects):
    one, two = await holds(nc, names, "o1"), await holds(nc, names, "o2")
    first = chat()
    await one.take(first, "answer-1", "enqueue", nothing, nothing)
    await one.give_up(first, "answer-1")  # its write made, the stop read with the answer to it
    assert await asyncio.wait_for(two.take(chat(), "answer-2", "reject", nothing, nothing), 5)


async def test_a_queued_chat_is_woken_by_the_release_though_its_heartbeat_is_long(nc: Client, names: Subjects):
    one, two = await holds(nc, names, "o1"), await holds(nc, names, "o2", heartbeat=60)
    said_it_waits = asyncio.Event()

    async def asked(msg: Msg) -> None:  # a copy of each question o1 answers
        if msgspec.json.decode(msg.data, type=HoldQuery).waiting:
            said_it_waits.set()

    await nc.subscribe(names.holding_at("o1"), cb=asked)
    first, second = chat(), chat()
    revision = await one.take(first, "answer-1", "enqueue", nothing, nothing)
    waiting = asyncio.create_task(two.take(second, "answer-2", "enqueue", nothing, nothing))
    await asyncio.wait_for(said_it_waits.wait(), 5)
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


async def test_an_older_versions_hold_is_marked_by_its_waiter_and_its_release_wakes_it(nc: Client, names: Subjects):
    """Rolling deploys: an older orchestrator gives its turn up by writing the free entry, and
    announces (with nothing said) only a release whose entry a waiter marked."""
    mine = await holds(nc, names, "o1", heartbeat=60)
    kv = await nc.jetstream().key_value(names.answering_bucket)
    older = Hold("c-old", "m-old", "answer-old", "o-older", until=time.time() + 60, asked=True)
    await kv.put(user_token("ann"), msgspec.json.encode(older))
    waiting = asyncio.create_task(mine.take(chat(), "answer-1", "enqueue", nothing, nothing))

    async def holder() -> tuple[int, Hold | None]:
        entry = await kv.get(user_token("ann"))
        return entry.revision or 0, msgspec.json.decode(entry.value or b"", type=Hold)

    revision, marked = await until(holder, lambda found: found[1] is not None and found[1].awaited)
    assert not waiting.done()
    await kv.update(user_token("ann"), FREE, last=revision)  # the older release: its write failed once, then this
    await nc.publish(names.released("ann"), b"")
    assert await asyncio.wait_for(waiting, 5) > revision  # woken by the release, not its heartbeat


@pytest.mark.parametrize("lingers", [False, True], ids=["older", "lingering"])
async def test_a_hold_whose_orchestrator_is_gone_is_taken_over_after_a_heartbeat(
    nc: Client, names: Subjects, lingers: bool
):
    """Its orchestrator has no subscription left (killed): no responders, so the hold is not waited out."""
    mine = await holds(nc, names, "o1")
    kv = await nc.jetstream().key_value(names.answering_bucket)
    dead = Hold("c-dead", "m-dead", "answer-dead", "o-killed", until=time.time() + 60, asked=True, lingers=lingers)
    await kv.put(user_token("ann"), msgspec.json.encode(dead))
    asked = time.monotonic()
    assert await asyncio.wait_for(mine.take(chat(), "answer-1", "enqueue", nothing, nothing), 5)
    assert time.monotonic() - asked >= mine.heartbeat  # missing twice, a heartbeat apart


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
    assert not waiting.done() and asked[0] == HoldQuery("ann", "answer-held", waiting=True)
    still = False  # restarted under the same name, say, or ended without giving the turn up
    assert await asyncio.wait_for(waiting, 5)


@pytest.mark.parametrize("lingers", [False, True], ids=["older", "lingering"])
async def test_a_holder_missing_from_nats_once_is_asked_again_before_its_turn_is_taken(
    nc: Client, names: Subjects, lingers: bool
):
    """Once may be a reconnect (its subscription not yet back): only a second miss takes the turn over."""
    mine = await holds(nc, names, "o1")
    kv = await nc.jetstream().key_value(names.answering_bucket)
    held = Hold("c-held", "m-held", "answer-held", "o-back", until=time.time() + 60, asked=True, lingers=lingers)
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
