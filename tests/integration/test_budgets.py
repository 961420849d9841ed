"""The token-budget bucket against real NATS: clients on one bucket agree, and it fails open."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import nats
from nats.aio.client import Client
from pam_shared.budget import Budgets
from pam_shared.settings import BudgetSettings
from pam_shared.subjects import Subjects

NOW = datetime(2026, 12, 2, 16, 0, tzinfo=UTC)


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


async def test_a_user_past_a_limit_is_refused_by_every_client_until_it_resets(nats_url, names):
    connections, (a, b) = await two_clients(nats_url, names, BudgetSettings(100, 150))
    try:
        await a.debit("u1", 99, NOW)
        assert await b.spent("u1", NOW) is None  # 99 of 100: one more chat
        await b.debit("u1", 40, NOW)
        spent = await a.spent("u1", NOW)
        assert spent is not None and spent.details == {
            "period": "day",
            "resets_at": "2026-12-03T00:00:00Z",
            "retry_after_seconds": 8 * 3600,
        }
        tomorrow = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
        assert await b.spent("u1", tomorrow) is None  # a new day; 139 of the month's 150
        await a.debit("u1", 11, tomorrow)
        spent = await b.spent("u1", tomorrow)
        assert spent is not None and (spent.period, spent.details["resets_at"]) == ("month", "2027-01-01T00:00:00Z")
        assert await a.spent("u2", tomorrow) is None
    finally:
        for nc in connections:
            await nc.close()


async def test_an_unreachable_bucket_lets_chats_through_and_says_so_once(nats_url, names, caplog):
    connections, (budget, _) = await two_clients(nats_url, names, BudgetSettings(10, 0))
    await budget.debit("u1", 50, NOW)
    for nc in connections:
        await nc.close()
    with caplog.at_level(logging.WARNING, logger="pam.budget"):
        assert await budget.spent("u1", NOW) is None
        assert await budget.spent("u1", NOW) is None
    assert [r.getMessage()[:33] for r in caplog.records] == ["budget bucket unavailable, allowi"]
