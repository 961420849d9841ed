"""The token-budget bucket against real NATS: debits from many clients add up, their spent markers
reach every gateway's book, erasure takes them, and NATS trouble stops nobody chatting."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import nats
import pytest
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError
from pam_gateway.consent import PrivacyBook
from pam_gateway.erasing import Erasures
from pam_gateway.registry import Registry
from pam_gateway.spent import SpentBook
from pam_shared import erasure
from pam_shared.background import Tasks
from pam_shared.budget import Budgets, Spent, marker_key
from pam_shared.erasure import Erasing, erasure_encoder
from pam_shared.privacy import Privacy
from pam_shared.settings import BudgetSettings
from pam_shared.subjects import Subjects

NOW = datetime(2026, 12, 2, 16, 0, tzinfo=UTC)
WATCH_DELAY_SECONDS = 2.0
"""At most this long from a debit's end to every gateway refusing (milliseconds in practice)."""


async def two_clients(nats_url: str, names: Subjects, settings: BudgetSettings) -> tuple[list[Client], list[Budgets]]:
    """Two processes' worth of budgets: their own connections, one bucket."""
    connections = [await nats.connect(nats_url) for _ in range(2)]
    budgets = [Budgets(nc.jetstream(), names.budget_bucket, settings) for nc in connections]
    for budget in budgets:
        await budget.start(replicas=1)
    return connections, budgets


async def test_concurrent_debits_from_two_clients_lose_no_update(nats_url, names):
    connections, (a, b) = await two_clients(nats_url, names, BudgetSettings(1000, 0))
    try:
        await asyncio.gather(*(budget.debit("u1", 7, NOW) for _ in range(15) for budget in (a, b)))
        for budget in (a, b):
            usage = await budget.usage("u1", NOW)
            assert (usage.day.used, usage.day.limit, usage.day.resets_at) == (210, 1000, "2026-12-03T00:00:00Z")
            assert (usage.month.used, usage.month.limit, usage.month.resets_at) == (210, None, "2027-01-01T00:00:00Z")
        assert (await a.usage("u2", NOW)).day.used == 0  # another user spent nothing
    finally:
        for nc in connections:
            await nc.close()


async def spent_book(nats_url: str, names: Subjects, settings: BudgetSettings) -> tuple[Client, SpentBook, Tasks]:
    """A gateway's side: its own connection, watching the markers."""
    nc = await nats.connect(nats_url)
    book, tasks = SpentBook(nc.jetstream(), names.budget_bucket, settings), Tasks()
    await book.start(tasks, replicas=1)
    return nc, book, tasks


async def refused(book: SpentBook, user: str, at: datetime) -> Spent:
    """The book's refusal, once the watcher has brought the marker (waited on, not slept for)."""
    async with asyncio.timeout(WATCH_DELAY_SECONDS):
        while (spent := book.spent(user, at)) is None:
            book.taken.clear()
            await book.taken.wait()
    return spent


async def test_a_debit_over_the_limit_makes_another_process_refuse_the_user_until_it_resets(nats_url, names):
    settings = BudgetSettings(100, 150)
    connections, (orchestrator, _) = await two_clients(nats_url, names, settings)
    gateway_nc, book, tasks = await spent_book(nats_url, names, settings)
    kv = await connections[0].jetstream().key_value(names.budget_bucket)
    try:
        await orchestrator.debit("u1", 99, NOW)
        with pytest.raises(KeyNotFoundError):  # 99 of 100: no marker, one more chat
            await kv.get(marker_key("u1", "day", NOW))
        assert book.spent("u1", NOW) is None
        await orchestrator.debit("u1", 40, NOW)
        assert (await refused(book, "u1", NOW)).details == {
            "period": "day",
            "resets_at": "2026-12-03T00:00:00Z",
            "retry_after_seconds": 8 * 3600,
        }
        tomorrow = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
        assert book.spent("u1", tomorrow) is None  # a new day; 139 of the month's 150
        await orchestrator.debit("u1", 11, tomorrow)
        spent = await refused(book, "u1", tomorrow)
        assert (spent.period, spent.details["resets_at"]) == ("month", "2027-01-01T00:00:00Z")
        assert book.spent("u2", tomorrow) is None and tasks.healthy
        assert (await orchestrator.usage("u1", tomorrow)).month.used == 150  # the counters stay exact
    finally:
        await book.close()
        await tasks.stop()
        for nc in (*connections, gateway_nc):
            await nc.close()


async def test_a_gateway_started_later_replays_the_markers_against_its_own_limit(nats_url, names):
    connections, (orchestrator, _) = await two_clients(nats_url, names, BudgetSettings(100, 0))
    await orchestrator.debit("u1", 130, NOW)
    same = await spent_book(nats_url, names, BudgetSettings(100, 0))
    raised = await spent_book(nats_url, names, BudgetSettings(200, 0))
    try:
        assert same[1].spent("u1", NOW) is not None  # complete once started: no wait
        assert raised[1].spent("u1", NOW) is None  # a raised limit lets the user in again
    finally:
        for nc, book, tasks in (same, raised):
            await book.close()
            await tasks.stop()
            await nc.close()
        for nc in connections:
            await nc.close()


async def test_erasure_purges_the_users_markers_with_their_counters(nats_url, names):
    connections, (orchestrator, _) = await two_clients(nats_url, names, BudgetSettings(10, 0))
    await orchestrator.debit("u1", 50, NOW)
    await orchestrator.debit("u2", 50, NOW)
    js = connections[0].jetstream()
    for stream, subject in await erasure.places(js, names, "u1"):
        if stream == f"KV_{names.budget_bucket}":
            await js.purge_stream(stream, subject=subject)
    nc, book, tasks = await spent_book(nats_url, names, BudgetSettings(10, 0))
    try:
        assert book.spent("u1", NOW) is None and book.spent("u2", NOW) is not None
        assert (await orchestrator.usage("u1", NOW)).day.used == 0
    finally:
        await book.close()
        await tasks.stop()
        for client in (*connections, nc):
            await client.close()


async def test_without_nats_the_markers_held_still_refuse_and_a_debit_says_so_once(nats_url, names, caplog):
    connections, (budget, _) = await two_clients(nats_url, names, BudgetSettings(10, 0))
    await budget.debit("u1", 50, NOW)
    gateway_nc, book, tasks = await spent_book(nats_url, names, BudgetSettings(10, 0))
    for nc in (*connections, gateway_nc):
        await nc.close()
    with caplog.at_level(logging.WARNING, logger="pam.budget"):
        assert book.spent("u1", NOW) is not None and book.spent("u2", NOW) is None
        await budget.debit("u2", 5, NOW)
        await budget.debit("u2", 5, NOW)
    assert [r.getMessage()[:19] for r in caplog.records] == ["budget not debited "]
    await tasks.stop()


async def test_a_gateway_forgets_the_markers_of_a_user_being_erased(nats_url, names):
    """The bucket's purge is not told to watchers: the gateway's erasure handler drops them."""
    connections, (orchestrator, _) = await two_clients(nats_url, names, BudgetSettings(10, 0))
    nc, book, tasks = await spent_book(nats_url, names, BudgetSettings(10, 0))
    erasures = Erasures(nc, names, "gw-test", Registry(), PrivacyBook(nc.jetstream(), names, Privacy()), book)
    await erasures.start()
    try:
        await orchestrator.debit("u1", 50, NOW)
        await refused(book, "u1", NOW)
        reply = await connections[0].request(names.erasing, erasure_encoder.encode(Erasing("u1")), timeout=5)
        assert reply.data == b"gw-test" and book.spent("u1", NOW) is None
    finally:
        await erasures.stop()
        await book.close()
        await tasks.stop()
        for client in (*connections, nc):
            await client.close()
