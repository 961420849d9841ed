"""Running a coroutine in the caller's turn, until it is done or has to wait.

A publish (nats-py) or a socket send (uvicorn) is a coroutine that almost never waits:
it appends to a buffer and returns.  Starting it as a task costs a task, a loop turn and,
on Python 3.11, a ``getpid`` system call per message (``asyncio.eager_task_factory`` is
3.12+).  ``start`` runs it right there, from plain code such as a timer's callback, and
only what is left after its first wait goes on in a task.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any


def start(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run ``coro`` until it is done (None) or waits (the task that finishes it).

    What it raises before its first wait is raised here."""
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_finish(resumed(coro, waiting)))


async def _finish(rest: Awaitable[None]) -> None:
    await rest


@types.coroutine
def resumed(started: Coroutine[Any, Any, None], waiting: Any) -> Generator[Any, Any, None]:
    """The rest of a coroutine already run up to its first wait (``waiting``, what it yielded),
    for a task to await: what it waits on goes up to the task, and what the task sends or
    throws back (a result, a cancellation) goes down to it, as ``await`` would have done."""
    while True:
        try:
            sent = yield waiting
        except BaseException as exc:
            try:
                waiting = started.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting = started.send(sent)
            except StopIteration:
                return
