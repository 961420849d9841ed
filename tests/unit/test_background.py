"""Background loops survive a bad item; a task that dies anyway is seen, not silent."""

from __future__ import annotations

import asyncio

from pam_shared.background import Tasks, item_errors, survive


def errors_of(task: str) -> float:
    return item_errors.labels(task)._value.get()


async def test_a_loop_survives_an_item_that_raises():
    handled: list[int] = []
    before = errors_of("unit-loop")
    for item in (1, 0, 2):
        with survive("unit-loop"):
            handled.append(10 // item)
    assert handled == [10, 5] and errors_of("unit-loop") == before + 1


async def test_a_task_that_dies_makes_the_process_unhealthy_and_says_which():
    deaths: list[str] = []
    tasks = Tasks(on_death=deaths.append)
    died = asyncio.Event()

    async def broken() -> None:
        died.set()
        raise RuntimeError("bug")

    tasks.start("sweeper", broken())
    await died.wait()
    await asyncio.sleep(0)  # the done callback runs on the next turn of the loop
    assert not tasks.healthy and tasks.dead == ["sweeper"] and deaths == ["sweeper"]


async def test_stopping_cancels_tasks_without_calling_them_dead():
    tasks = Tasks()
    tasks.start("forever", asyncio.Event().wait())
    await tasks.stop()
    assert tasks.healthy
