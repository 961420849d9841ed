"""Conversation control without a network: stopping chats in flight, a branch's place in the recent
turns, and the read API's tree of a conversation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from pam_orchestrator.inflight import Answers
from pam_orchestrator.turns import Kept, Recall
from pam_persistence.reads import Tree
from pam_shared.internal import ChatRequest
from pam_shared.protocol import ChatContext
from pam_shared.read_api import StoredMessage


def chat(message: str = "q", user: str = "ann", message_id: str | None = "m1", **branch: str) -> ChatRequest:
    return ChatRequest("c-new", "s1", user, False, message, ChatContext(), 100.0, message_id, None, **branch)


async def test_a_stop_cancels_only_the_users_own_chat_that_has_not_ended():
    answers = Answers()
    task = asyncio.create_task(asyncio.Event().wait())
    answering = answers.add(chat(), "answer-1", task)
    assert answers.stop("bob", "m1") == "not_found"  # someone else's
    assert answers.stop("ann", "m1") == "dequeued" and answering.stopped  # still waiting its turn
    assert answers.stop("ann", "answer-1") == "not_found"  # stopped already
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()

    streaming = answers.add(chat(message_id="m2"), "answer-2", asyncio.create_task(asyncio.Event().wait()))
    streaming.phase = "streaming"
    assert answers.stop("ann", "answer-2") == "stopped"
    starting = answers.add(chat(message_id="m4"), "answer-4", asyncio.create_task(asyncio.Event().wait()))
    starting.phase = "starting"
    assert answers.stop("ann", "m4") == "stopped" and starting.stopped  # its turn came: it ends stopped
    assert not starting.task.cancelling()  # reading its conversation: only marked, the answer sees it
    starting.task.cancel()
    ending = answers.add(chat(message_id="m3"), "answer-3", asyncio.create_task(asyncio.sleep(0)))
    ending.phase = "ending"
    assert answers.stop("ann", "m3") == "not_found"  # its end is on the way
    answers.remove(ending)
    assert answers.stop("ann", "m3") == "not_found"


KEPT = [
    Kept("user", "q1", 1.0, "c1", "m1"),
    Kept("assistant", "a1", 2.0, "answer-1", "m1"),
    Kept("user", "q2", 3.0, "c2", "m2"),
    Kept("assistant", "a2", 4.0, "answer-2", "m2"),
]


def recall(request: ChatRequest) -> Recall:
    store = type("Store", (), {"gap": 600.0, "limit": 10})()
    return Recall(store, request, [], KEPT, 7, "answer-new")  # type: ignore[arg-type]


def test_a_regenerate_answers_its_question_again_from_before_the_answer():
    found = recall(chat("", regenerate="answer-2"))
    again = found.branched()
    assert again is not None and again.message == "q2" and found.parent_id == "c2"
    assert [t.content for t in found.turns] == ["q1", "a1"] and found.fork == 3
    by_chat_id = recall(chat("", regenerate="m1"))
    assert by_chat_id.branched() is not None and by_chat_id.parent_id == "c1" and by_chat_id.fork == 1


def test_an_edit_replaces_the_message_and_what_followed_it():
    found = recall(chat("q2, better", edit_of="m2"))
    edited = found.branched()
    assert edited is not None and edited.message == "q2, better" and found.parent_id == "c-new"
    assert [t.content for t in found.turns] == ["q1", "a1"] and found.fork == 2


def test_a_turn_not_among_the_recent_ones_cannot_be_branched_from():
    assert recall(chat("", regenerate="answer-9")).branched() is None
    assert recall(chat("x", edit_of="answer-1")).branched() is None  # an answer is not a user message


def row(id: str, role: str, parent_id: str | None = None, edit_of: str | None = None, cid: str | None = None) -> dict:
    return {"id": id, "role": role, "client_message_id": cid, "parent_id": parent_id, "edit_of": edit_of}


def message(id: str) -> StoredMessage:
    return StoredMessage(id=id, role="user", content="", intent=None, created_at=datetime.now(UTC))


def test_the_tree_follows_answers_to_their_question_and_edits_to_the_replaced_ones_parent():
    rows = [
        row("q1", "user", cid="m1"),
        row("a1", "assistant", "q1"),
        row("a1b", "assistant", "q1"),  # regenerated
        row("q2", "user", cid="m2"),
        row("a2", "assistant", "q2"),
        row("q2b", "user", edit_of="m2"),  # edited, by the client's id
        row("a3", "assistant", "q2b"),
        row("a0", "assistant", "gone"),  # an answer whose question is in no page of this conversation
    ]
    tree = Tree(rows)  # type: ignore[arg-type]
    placed = {m.id: tree.place(message(m.id)) for m in (message(r["id"]) for r in rows)}
    assert placed["a1"].parent_id == placed["a1b"].parent_id == "q1" and placed["a1"].siblings == ["a1b"]
    assert placed["q2"].parent_id == "a1b" and placed["q2b"].parent_id == "a1b" and placed["q2b"].siblings == ["q2"]
    assert placed["a0"].parent_id == "a3"  # follows the message before it
    current = [m for m, p in placed.items() if p.current]
    assert current == ["q1", "a1b", "q2b", "a3", "a0"]
