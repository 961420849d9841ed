"""The orchestrators' recent-turns bucket against real NATS: compare-and-set, and persistence when cold."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from pam_orchestrator.turns import RecentTurns
from pam_shared.internal import ChatRequest, HistoryReply, Turn, history_request_decoder
from pam_shared.protocol import ChatContext, encoder
from pam_shared.subjects import Subjects


@pytest.fixture
async def store(nc: Client, names: Subjects) -> AsyncIterator[RecentTurns]:
    turns = RecentTurns(nc, names, limit=10, gap_seconds=600)
    await turns.start(replicas=1)
    yield turns


def chat(message: str, user: str = "u1") -> ChatRequest:
    return ChatRequest(uuid.uuid4().hex, "s1", user, False, message, ChatContext(), time.time())


def contents(turns: list[Turn]) -> list[str]:
    return [turn.content for turn in turns]


async def test_two_orchestrators_answering_one_user_at_once_both_keep_their_turns(store):
    for round_ in range(2):  # first with no entry yet (both create), then both at the same revision
        first, second = chat(f"first {round_}"), chat(f"second {round_}")
        recalled = [await store.recall(first), await store.recall(second)]
        await asyncio.gather(recalled[0].keep(f"answer 1.{round_}"), recalled[1].keep(f"answer 2.{round_}"))
    seen = contents((await store.recall(chat("next"))).turns)
    for round_ in range(2):
        assert {f"first {round_}", f"answer 1.{round_}", f"second {round_}", f"answer 2.{round_}"} <= set(seen)
    assert len(seen) == 8 and seen.index("first 0") < seen.index("first 1")


async def test_a_user_without_an_entry_is_asked_of_persistence_once(store, nc, names):
    asked: list[str] = []

    async def persistence(msg: Msg) -> None:
        asked.append(history_request_decoder.decode(msg.data).user_id)
        await msg.respond(encoder.encode(HistoryReply("c1", [Turn("user", "earlier"), Turn("assistant", "reply")])))

    await nc.subscribe(names.history, cb=persistence)
    cold = await store.recall(chat("how far to Cairns"))
    assert contents(cold.turns) == ["earlier", "reply"] and asked == ["u1"]
    await cold.keep("1,700 km")
    warm = await store.recall(chat("and by train?"))
    assert contents(warm.turns) == ["earlier", "reply", "how far to Cairns", "1,700 km"]
    assert asked == ["u1"]
