"""The gateway's spent book: admission from the orchestrators' spent markers, no network."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from nats.js.kv import KV_PURGE, KeyValue
from pam_gateway.spent import SpentBook
from pam_shared.background import Tasks, item_errors
from pam_shared.budget import marker_key
from pam_shared.settings import BudgetSettings

NOW = datetime(2026, 12, 2, 16, 0, tzinfo=UTC)
TOMORROW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
NEXT_MONTH = datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC)
END = object()


def book(day: int = 100, month: int = 150) -> SpentBook:
    return SpentBook(None, "UNUSED", BudgetSettings(day, month))  # type: ignore[arg-type]  # fed by hand


def marker(user: str, period: str, used: int | bytes, at: datetime = NOW, op: str | None = None) -> KeyValue.Entry:
    value = used if isinstance(used, bytes) else str(used).encode()
    return KeyValue.Entry("B", marker_key(user, period, at), value, 1, 0, 0, op)  # type: ignore[arg-type]


async def entries(queue: asyncio.Queue[object]) -> AsyncIterator[KeyValue.Entry | None]:
    """What a watcher yields: entries as they come, None once caught up; ends like a stopped one."""
    while (item := await queue.get()) is not END:
        yield item  # type: ignore[misc]


async def loaded(
    spent: SpentBook, *first: KeyValue.Entry, tasks: Tasks | None = None
) -> tuple[asyncio.Queue[object], Tasks]:
    queue: asyncio.Queue[object] = asyncio.Queue()
    for entry in (*first, None):
        queue.put_nowait(entry)
    tasks = tasks or Tasks()
    await spent.load(entries(queue), tasks)
    return queue, tasks


async def taken(spent: SpentBook, queue: asyncio.Queue[object], *more: object) -> None:
    """Hand the follower entries and wait until it has taken the last one."""
    for item in more:
        spent.taken.clear()
        queue.put_nowait(item)
        await asyncio.wait_for(spent.taken.wait(), 1)


async def test_a_marker_at_the_limit_refuses_its_user_until_the_period_resets():
    spent = book()
    queue, _ = await loaded(spent, marker("ana", "day", 130))
    refused = spent.spent("ana", NOW)
    assert refused is not None and refused.details == {
        "period": "day",
        "resets_at": "2026-12-03T00:00:00Z",
        "retry_after_seconds": 8 * 3600,
    }
    assert spent.spent("bo", NOW) is None
    assert spent.spent("ana", TOMORROW) is None  # yesterday's marker is no longer looked at
    assert spent.spent("ana", NOW) is None  # and was dropped from memory
    await taken(spent, queue, marker("ana", "month", 150, TOMORROW), marker("ana", "day", 100, TOMORROW))
    refused = spent.spent("ana", TOMORROW)
    assert refused is not None and refused.details["period"] == "month"  # both spent: the later reset
    assert spent.spent("ana", NEXT_MONTH) is None


async def test_markers_are_held_against_this_gateways_own_limits():
    raised = book(day=200, month=0)
    await loaded(raised, marker("ana", "day", 130), marker("ana", "month", 900))
    assert raised.spent("ana", NOW) is None  # a raised day limit lets them in; no month limit here
    lowered = book(day=120)
    await loaded(lowered, marker("ana", "day", 130))
    assert lowered.spent("ana", NOW) is not None


async def test_a_late_marker_of_an_earlier_day_does_not_replace_todays():
    spent = book()
    await loaded(spent, marker("ana", "day", 120, TOMORROW), marker("ana", "day", 500, NOW))
    assert spent.spent("ana", TOMORROW) is not None


async def test_a_bad_marker_is_counted_and_the_watcher_goes_on():
    spent = book()
    before = item_errors.labels("budget-spent")._value.get()
    queue, tasks = await loaded(spent, marker("ana", "day", b"not a number"))
    await taken(spent, queue, marker("bo", "week", 300), marker("cy", "day", 100))
    assert item_errors.labels("budget-spent")._value.get() == before + 2
    assert spent.spent("ana", NOW) is None and spent.spent("cy", NOW) is not None and tasks.healthy


async def test_a_purged_marker_and_an_erased_user_are_dropped():
    spent = book()
    queue, _ = await loaded(spent, marker("ana", "day", 120), marker("bo", "day", 120))
    await taken(spent, queue, marker("ana", "day", b"", op=KV_PURGE))
    spent.forget("bo")  # the erasure purged the bucket, which the watcher does not hear
    assert spent.spent("ana", NOW) is None and spent.spent("bo", NOW) is None


async def test_a_watcher_that_ends_takes_readiness_down_and_says_so_once(caplog):
    spent, died = book(), asyncio.Event()
    queue, tasks = await loaded(spent, marker("ana", "day", 120), tasks=Tasks(on_death=lambda _: died.set()))
    with caplog.at_level(logging.WARNING, logger="pam.gateway.spent"):
        queue.put_nowait(END)
        await asyncio.wait_for(died.wait(), 1)
    assert not tasks.healthy and tasks.dead == ["budget-spent"]
    assert [r.getMessage()[:31] for r in caplog.records if r.name == "pam.gateway.spent"] == [
        "budget markers no longer follow"
    ]
    assert spent.spent("ana", NOW) is not None  # what it knew still holds; everyone else goes through
    assert spent.spent("bo", NOW) is None


async def test_with_no_budget_set_nothing_is_watched():
    spent = book(0, 0)
    await spent.start(Tasks(), 1)  # would touch the (None) JetStream context if it watched
    assert spent.spent("ana", NOW) is None
