"""The chats this orchestrator is answering or holding in a queue, by id, so one can be stopped.

A stop cancels the chat's task; what the task was doing decides what the user gets: a
queued chat ends at once (``dequeued``), a streaming answer ends with what was said, marked
``truncated: "stopped"`` (``answer.answer`` turns that cancellation into its end).  An answer
past its last word is not stopped: its end is already on the way.  A chat whose turn has come
but that still reads its conversation (``starting``: a few bounded reads) is marked, not
cancelled: cancelled there it ended with no end at all, and its end needs what it reads (to be
kept in the conversation, to find a regenerate's turn); the answer looks before it asks the model.

The mark, not the cancellation, is what counts: ``asyncio.wait_for`` (every nats-py request)
returns what it awaited when that arrived with the cancellation, swallowing it, so the chat
looks at ``stopped`` after each step it awaits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

from pam_shared.internal import CancelStatus, ChatRequest

Phase = Literal["queued", "starting", "streaming", "ending"]


class Answering:
    """One chat on this orchestrator, and whether a stop was asked for."""

    __slots__ = ("chat", "answer_id", "task", "phase", "stopped", "waited", "release")

    def __init__(self, chat: ChatRequest, answer_id: str, task: asyncio.Task[None]) -> None:
        self.chat = chat
        self.answer_id = answer_id
        self.task = task
        self.phase: Phase = "queued"
        self.stopped = False
        self.waited = False
        """It waited for an answer before it: its turn, not its arrival, places it in the conversation."""
        self.release: Callable[[], Awaitable[None]] | None = None
        """Gives up the chat's turn in its conversation (None: it holds none, or gave it up)."""

    async def released(self) -> None:
        """Give the turn up, once: as the end is kept, before it is sent, so a chat sent on seeing the
        end finds it free (and at the latest when the chat is done, whatever happened)."""
        release, self.release = self.release, None
        if release is not None:
            await release()

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.answer_id, self.chat.message_id) if self.chat.message_id else (self.answer_id,)


class Answers:
    def __init__(self) -> None:
        self._by_id: dict[tuple[str, str], Answering] = {}

    def add(self, chat: ChatRequest, answer_id: str, task: asyncio.Task[None]) -> Answering:
        answering = Answering(chat, answer_id, task)
        for message_id in answering.ids:
            self._by_id[(chat.user_id, message_id)] = answering
        return answering

    def remove(self, answering: Answering) -> None:
        for message_id in answering.ids:
            if self._by_id.get((answering.chat.user_id, message_id)) is answering:
                del self._by_id[(answering.chat.user_id, message_id)]

    def stop_all(self, user_id: str) -> set[asyncio.Task[None]]:
        """Stop every chat of ``user_id`` here (a user being erased); the tasks to wait for."""
        mine = {a for (user, _), a in self._by_id.items() if user == user_id and a.task is not asyncio.current_task()}
        for answering in mine:
            answering.stopped = True
            answering.task.cancel()
        return {a.task for a in mine}

    def stop(self, user_id: str, message_id: str) -> CancelStatus:
        """Stop ``user_id``'s chat named ``message_id`` if it runs here and has not ended."""
        answering = self._by_id.get((user_id, message_id))
        if answering is None or answering.stopped or answering.phase == "ending":
            return "not_found"
        answering.stopped = True
        if answering.phase != "starting":
            answering.task.cancel()
        return "dequeued" if answering.phase == "queued" else "stopped"
