"""The inbox rule, in process: each frame once, copies only where they belong, replay before live."""

from __future__ import annotations

import asyncio
import json

from nats.aio.client import Client
from pam_gateway.dialect import SEED
from pam_gateway.inbox import PARKED_PUSHES, Inbox, KeptFrames
from pam_shared import delivery
from pam_shared.subjects import Subjects

USER = "u-inbox"


class Out:
    """A socket's send queue that keeps what it is given."""

    def __init__(self, texts: list[str]) -> None:
        self.put = texts.append


def frame(n: int, reply_to: str | None = None) -> bytes:
    return json.dumps({"type": "ui_actions", "actions": [], "n": n, "reply_to": reply_to}).encode()


def sent(texts: list[str]) -> list[tuple[int, object]]:
    return [(f["n"], f.get("event_id")) for f in map(json.loads, texts)]


async def keep(nc: Client, names: Subjects, n: int, chat_id: str | None = None, reply_to: str | None = None) -> int:
    await delivery.ensure_frames_stream(nc.jetstream(), names, 60)
    return await delivery.store(nc.jetstream(), names, USER, frame(n, reply_to), chat_id)


async def test_a_frame_with_an_event_id_reaches_the_socket_once(nc, names):
    out: list[str] = []
    inbox = Inbox(USER, Out(out), SEED, KeptFrames(nc.jetstream(), names))
    for event_id in ("7", "7", None, None, "8", "7"):
        inbox.deliver(frame(1), event_id)
    assert sent(out) == [(1, 7), (1, None), (1, None), (1, 8)]


async def test_copies_of_answers_go_only_to_a_resumed_socket_that_did_not_ask(nc, names):
    await keep(nc, names, 0)
    asker, other = [], []
    asking = Inbox(USER, Out(asker), SEED, KeptFrames(nc.jetstream(), names))
    resumed = Inbox(USER, Out(other), SEED, KeptFrames(nc.jetstream(), names))
    asking.asked("chat-1")
    await resumed.resume(10**9, (), lambda oldest: None)
    for inbox in (asking, resumed):
        inbox.deliver_copy(frame(1), "101", "chat-1")  # a lasting frame of chat-1, from the user subject
        inbox.deliver_copy(frame(2), "102", None)  # a push
    assert sent(asker) == []  # the push waits behind chat-1's answer
    asking.answered("chat-1")
    assert sent(asker) == [(2, 102)]
    assert sent(other) == [(1, 101), (2, 102)]


async def test_pushes_wait_until_every_pending_chat_has_ended_then_follow_in_order_bounded(nc, names):
    out: list[str] = []
    inbox = Inbox(USER, Out(out), SEED, KeptFrames(nc.jetstream(), names))
    inbox.asked("chat-1")
    inbox.asked("chat-2")
    for n in range(PARKED_PUSHES + 2):
        inbox.deliver_copy(frame(n), str(1000 + n), None)
    inbox.deliver(frame(-1), "999")  # chat-1's end, from its reply subject
    inbox.answered("chat-1")
    assert sent(out) == [(-1, 999)]  # chat-2 still waits
    inbox.answered("chat-2")
    assert sent(out)[1:] == [(n, 1000 + n) for n in range(2, PARKED_PUSHES + 2)]  # the two oldest dropped
    inbox.deliver_copy(frame(99), "2000", None)
    assert sent(out)[-1] == (99, 2000)  # nothing pending: at once


async def test_live_frames_wait_behind_a_replay_and_pending_answers_come_back(nc, names):
    first = await keep(nc, names, 1, chat_id="c1", reply_to="m1")
    second = await keep(nc, names, 2)
    third = await keep(nc, names, 3)
    out: list[str] = []
    inbox = Inbox(USER, Out(out), SEED, KeptFrames(nc.jetstream(), names))
    resuming = asyncio.create_task(inbox.resume(second, ["m1"], lambda oldest: None))
    await asyncio.sleep(0)  # let the resume begin: it now holds live frames
    inbox.deliver(frame(4), "999999")
    assert await resuming == 2
    assert sent(out) == [(1, first), (3, third), (4, 999999)]


async def test_a_resume_from_before_the_window_reports_the_gap(nc, names):
    gone = await keep(nc, names, 1)
    kept = await keep(nc, names, 2)
    await nc.jetstream().delete_msg(names.frames_stream, gone)  # as if it aged out of the window
    out: list[str] = []
    gaps: list[int] = []
    inbox = Inbox(USER, Out(out), SEED, KeptFrames(nc.jetstream(), names))
    await inbox.resume(gone - 1, (), gaps.append)
    assert gaps == [kept] and sent(out) == [(2, kept)]


async def test_live_frames_held_behind_a_replay_that_fails_still_reach_the_socket(nc, names):
    texts: list[str] = []
    inbox = Inbox(USER, Out(texts), SEED, KeptFrames(nc.jetstream(), names))  # no frames stream: replay fails
    asyncio.get_running_loop().call_soon(inbox.deliver, frame(1), "5")  # arrives while the replay waits on NATS
    try:
        await inbox.resume(0, (), lambda oldest: None)
    except Exception:  # the session reports the failed replay; the live frame must not go with it
        pass
    assert sent(texts) == [(1, 5)]
