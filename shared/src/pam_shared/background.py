"""Long-lived background tasks that never die silently.

A loop wraps the handling of each item in ``survive``: a bug costs that item (logged with
its marker and counted), never the loop.  A task that ends anyway, by an exception that
escaped or by returning, is a broken process: ``Tasks`` logs it and ``healthy`` turns
false, which takes the service's readiness down instead of leaving it quietly deaf.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from prometheus_client import Counter

from pam_shared import logs

log = logging.getLogger("pam.background")

item_errors = Counter(
    "pam_background_item_errors_total", "Items a background loop failed to handle, and went on", ["task"]
)
task_deaths = Counter("pam_background_task_deaths_total", "Background tasks that ended unexpectedly", ["task"])


@contextlib.contextmanager
def survive(task: str, item: str = "item") -> Iterator[None]:
    """Around one item of a long-lived loop: an exception is logged and counted, and swallowed."""
    try:
        yield
    except Exception:
        item_errors.labels(task).inc()
        log.exception("%s: handling %s failed; going on", task, item, extra={"marker": logs.ERROR})


class Tasks:
    """The long-lived tasks of one process, started and cancelled together."""

    def __init__(self, on_death: Callable[[str], None] | None = None) -> None:
        self._tasks: dict[asyncio.Task[None], str] = {}
        self._stopping = False
        self.dead: list[str] = []
        self._on_death = on_death

    @property
    def healthy(self) -> bool:
        return not self.dead

    def start(self, name: str, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        self._tasks[task] = name
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[None]) -> None:
        name = self._tasks.pop(task)
        if self._stopping or task.cancelled():
            return
        self.dead.append(name)
        task_deaths.labels(name).inc()
        error = task.exception()
        log.error("background task %s ended: %r; not ready", name, error, exc_info=error, extra={"marker": logs.ERROR})
        if self._on_death is not None:
            self._on_death(name)

    def closing(self) -> None:
        """From now on a task that ends is shutting down with its owner, not dying."""
        self._stopping = True

    async def stop(self) -> None:
        self.closing()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
