"""Stopping a queued chat against real NATS, at the moments that matter: a chat acknowledged as
``dequeued`` is never answered, and never keeps the user's turn.

The waiting chat's orchestrator reaches NATS through a proxy that holds back what the server
sends it from one of its requests on (asking the holder it waits for whether it still answers,
taking the turn, or leaving the queue), and then delivers it in one read: the answer to that
request, and the stop right behind it, as a process too busy to read its socket gets them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import nats
import pytest
from nats.aio.client import Client
from nats.micro import add_service
from pam_orchestrator.control import Control
from pam_orchestrator.replies import ReplyStream
from pam_shared.internal import CancelRequest, ChatRequest, cancel_encoder, cancel_reply_decoder
from pam_shared.protocol import ChatContext
from pam_shared.subjects import Subjects, user_token
from support.tcp_proxy import TcpProxy


def chat() -> ChatRequest:
    return ChatRequest(uuid.uuid4().hex, "s1", "ann", False, "hello", ChatContext(), time.time(), uuid.uuid4().hex)


async def control(nc: Client, names: Subjects, instance: str) -> Control:
    service = await add_service(nc, name=names.orchestrator_service, version="0.0.0")
    made = Control(nc, names, instance, "enqueue", deadline=30, heartbeat=5)
    await made.start(1, service, names.orchestrator_queue)
    return made


async def nothing(*_: object) -> None:
    return None


async def kept(_: bytes) -> dict[str, str]:
    return {}


class Frames:
    """What one chat's orchestrator sent its gateway; ``on_queued`` runs as the first ``queued`` goes out."""

    def __init__(self, on_queued: Callable[[], Awaitable[None]] = nothing) -> None:
        self.sent: list[dict[str, Any]] = []
        self.on_queued = on_queued

    async def respond(self, data: bytes, headers: dict[str, str] | None) -> None:
        if not data:
            return  # progress
        frame = msgspec.json.decode(data)
        self.sent.append(frame)
        if frame["type"] == "queued" and len(self.sent) == 1:
            await self.on_queued()

    def replies(self, request: ChatRequest) -> ReplyStream:
        return ReplyStream(self.respond, request.message_id, kept, window=0.0)


async def answered(control: Control, request: ChatRequest, replies: ReplyStream) -> bool:
    """Whether the chat got its turn to be answered."""
    async with control.turn(request, replies) as answering:
        return answering is not None


async def ended(waiting: asyncio.Task[bool]) -> bool:
    """The chat's task's result, once it has ended by itself (``wait_for`` would cancel it: a stop)."""
    await asyncio.wait({waiting}, timeout=5)
    assert waiting.done(), "the chat still waits for its turn"
    return waiting.result()


@pytest.fixture
async def far(nats_url: str) -> AsyncIterator[tuple[Client, TcpProxy]]:
    """A connection through a proxy that can hold back what the server sends it."""
    with TcpProxy(nats_url) as proxy:
        client = await nats.connect(proxy.url_through(nats_url))
        yield client, proxy
        await client.close()


TURN, QUEUE, ASK = "turn", "queue", "ask"


async def queue_behind_a_holder(
    nc: Client, names: Subjects, far: tuple[Client, TcpProxy], given_up_first: bool, writes: tuple[str, ...]
) -> tuple[Control, Control, ChatRequest, Frames, asyncio.Task[bool], contextlib.AsyncExitStack]:
    """o1 answers a chat; a second one waits on o2, and what the server sends o2 is held back
    once o2 has made ``writes`` (of the user's turn, of the queue; or asked o1 whether it still
    answers) since it was queued (``given_up_first``: o1 gives the turn up as the second is
    queued, so o2's write takes it)."""
    client, proxy = far
    key = f"PUB $KV.{names.answering_bucket}.{user_token('ann')}"
    ask = f"PUB {names.holding_at('o1')} ".encode()
    subjects = {TURN: f"{key} ".encode(), QUEUE: f"{key}.queue ".encode(), ASK: ask}
    one, two = await control(nc, names, "o1"), await control(client, names, "o2")
    holding, first = contextlib.AsyncExitStack(), chat()
    assert await holding.enter_async_context(one.turn(first, Frames().replies(first)))

    async def on_queued() -> None:
        if given_up_first:
            await holding.aclose()
        proxy.hold_after(*(subjects[write] for write in writes))

    second, frames = chat(), Frames(on_queued)
    waiting = asyncio.create_task(answered(two, second, frames.replies(second)))
    answer = b'{"answering":true}' if writes[-1] == ASK else f'"stream":"KV_{names.answering_bucket}"'.encode()
    await asyncio.to_thread(proxy.wait_held, answer)
    return one, two, second, frames, waiting, holding


@pytest.mark.parametrize(
    ("given_up_first", "writes"),
    [(False, (ASK,)), (True, (TURN,)), (True, (TURN, QUEUE))],
    ids=["asking-the-holder", "taking-the-turn", "leaving-the-queue"],
)
async def test_a_stop_read_together_with_the_answer_to_a_write_still_dequeues_the_chat(
    nc: Client, names: Subjects, far: tuple[Client, TcpProxy], given_up_first: bool, writes: tuple[str, ...]
):
    one, _, second, frames, waiting, holding = await queue_behind_a_holder(nc, names, far, given_up_first, writes)
    cancel = cancel_encoder.encode(CancelRequest("ann", second.message_id or ""))
    asked = asyncio.create_task(nc.request(names.chat_cancel, cancel, timeout=5))  # either orchestrator takes it
    await asyncio.to_thread(far[1].wait_held, (second.message_id or "").encode())
    far[1].let_go()
    assert cancel_reply_decoder.decode((await asked).data).status == "dequeued"
    assert await ended(waiting) is False  # at once, the answer before it going on
    assert [(f["type"], f.get("message"), f.get("truncated")) for f in frames.sent] == [
        ("queued", None, None),
        ("chat_response", "", "stopped"),
    ]
    await holding.aclose()
    assert await one.holds.take(chat(), "answer-3", "reject", nothing, nothing)  # the turn is free


async def test_a_chat_stopped_while_its_taking_of_the_turn_is_unanswered_gives_the_turn_back(
    nc: Client, names: Subjects, far: tuple[Client, TcpProxy]
):
    one, two, second, frames, waiting, _ = await queue_behind_a_holder(nc, names, far, True, (TURN,))
    assert two.answers.stop("ann", second.message_id or "") == "dequeued"  # the write is done, its answer unread
    far[1].let_go()
    assert await ended(waiting) is False
    assert frames.sent[-1]["type"] == "chat_response" and frames.sent[-1]["truncated"] == "stopped"
    assert await one.holds.take(chat(), "answer-3", "reject", nothing, nothing)  # not left to its deadline
