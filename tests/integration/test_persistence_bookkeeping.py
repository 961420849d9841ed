"""Persistence's bookkeeping against real PostgreSQL: users' and conversations' times move only past
the activity resolution, a lagging stored time never splits or joins a conversation wrongly (in
the writer or in history), and screening sees an erasure it waited for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from pam_persistence import consent, reads, store
from pam_persistence import db as database
from pam_persistence.conversations import Activity
from pam_shared.events import Event
from pam_shared.internal import HistoryRequest
from pam_shared.privacy import Privacy
from support.persistence import analytics_event, answer, count, until, user_message

MINUTE = 60.0
ACTIVITY = Activity(timedelta(minutes=30), timedelta(seconds=60))
T0 = time.time() - 6 * 3600


@pytest.fixture
async def pools(database_url: str) -> AsyncIterator[list[asyncpg.Pool]]:
    """Two pools, as two persistence instances have (nothing else is shared between them)."""
    opened = [await database.open_pool(database_url, 3) for _ in range(2)]
    yield opened
    for pool in opened:
        await pool.close()


async def write(pool: asyncpg.Pool, *events: Event, activity: Activity = ACTIVITY) -> set[str]:
    keeping = store.Keeping(await consent.salt_of(pool), Privacy())
    return await store.write(pool, events, [], activity, keeping)


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


def said(content: str, seconds: float, user: str = "u1") -> Event:
    """``user`` says ``content`` ``seconds`` after T0 (the same time ``at(seconds)`` names)."""
    return user_message(user, content, at=T0 + seconds)


async def conversations(db: asyncpg.Connection, user: str = "u1") -> list[tuple[datetime, datetime, int]]:
    """The user's conversations, oldest first: started, last active (as stored), messages."""
    rows = await db.fetch(
        "SELECT c.started_at, c.last_activity_at, count(m.id) AS n FROM conversations c"
        " JOIN messages m ON m.conversation_id = c.id WHERE c.user_id = $1 GROUP BY c.id ORDER BY c.started_at",
        user,
    )
    return [(r["started_at"], r["last_activity_at"], r["n"]) for r in rows]


async def test_times_move_only_past_the_resolution_and_a_batch_within_it_writes_no_user_or_conversation(pools, db):
    pool = pools[0]
    await write(pool, said("first", 0))
    async with db.transaction():  # another transaction holds both rows as an update would
        await db.execute("SELECT FROM users WHERE id = 'u1' FOR NO KEY UPDATE")
        await db.execute("SELECT FROM conversations WHERE user_id = 'u1' FOR NO KEY UPDATE")
        await asyncio.wait_for(write(pool, said("50 s later", 50)), 5)
        blocked = asyncio.create_task(write(pool, said("61 s later", 61)))
        await until(lambda: waiting_for_a_row(db), bool)
    await blocked

    assert await conversations(db) == [(at(0), at(61), 3)]
    assert tuple(await db.fetchrow("SELECT first_seen_at, last_seen_at FROM users WHERE id = 'u1'")) == (at(0), at(61))
    await write(pool, said("a minute on", 100))
    assert await conversations(db) == [(at(0), at(61), 4)]  # within a minute of what is stored


async def waiting_for_a_row(db: asyncpg.Connection) -> bool:
    return await db.fetchval("SELECT count(*) > 0 FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'")


async def test_without_a_resolution_every_later_time_is_written(pools, db):
    exact = Activity(ACTIVITY.gap)
    await write(pools[0], said("first", 0), activity=exact)
    await write(pools[0], said("a second later", 1), activity=exact)
    assert await conversations(db) == [(at(0), at(1), 2)]


async def test_a_lagging_stored_end_never_splits_a_conversation(pools, db):
    """The stored end stays at T0 after the message at T0 + 50 s; a message 29.5 minutes after
    that one is 30 min 20 s after the stored end, but in the same conversation."""
    await write(pools[0], said("first", 0))
    await write(pools[1], said("50 s later", 50))
    assert await conversations(db) == [(at(0), at(0), 2)]
    back = 50 + 29.5 * MINUTE
    await write(pools[0], said("back", back))
    assert await conversations(db) == [(at(0), at(back), 3)]


async def test_a_lagging_stored_end_never_joins_what_an_idle_gap_split(pools, db):
    await write(pools[0], said("first", 0))
    await write(pools[1], said("50 s later", 50))
    later = 50 + 30 * MINUTE + 1  # within a minute past the stored end's reach, past the true end's
    await write(pools[0], said("a new trip", later))
    assert await conversations(db) == [(at(0), at(0), 2), (at(later), at(later), 1)]


async def test_a_message_between_two_conversations_joins_the_later_one_by_their_true_ends(pools, db):
    await write(pools[0], said("morning", 0), said("noon", 40 * MINUTE))
    await write(pools[1], said("morning, later", 50))
    await write(pools[0], said("in between", 20 * MINUTE))
    assert [n for _, _, n in await conversations(db)] == [2, 2]
    joined = await db.fetchval(
        "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id"
        " WHERE m.content = 'in between' AND c.started_at = $1",
        at(20 * MINUTE),
    )
    assert joined == 1  # the later conversation, now started at the message


async def test_history_finds_the_conversation_whose_stored_end_lags(pools, db):
    await write(pools[0], said("q1", 0), answer("u1", "a1", at=T0 + 1))
    await write(pools[0], said("q2", 50))
    assert await conversations(db) == [(at(0), at(1), 3)]

    def ask(before: float) -> HistoryRequest:
        return HistoryRequest("u1", "s1", before=before, limit=10)

    current = await reads.history(pools[0], ask(T0 + 50 + 29.5 * MINUTE), ACTIVITY)
    assert [t.content for t in current.turns] == ["q1", "a1", "q2"]
    idle = await reads.history(pools[0], ask(T0 + 50 + 30 * MINUTE + 1), ACTIVITY)
    assert idle.conversation_id is None


async def test_a_batch_waiting_for_an_erasure_sees_its_fence(pools, db):
    """The fence is read in a statement after the one that waits for the lock: one statement
    sees only what was committed before it began."""
    await write(pools[0], said("before", 0, "ana"))
    salt = await consent.salt_of(pools[0])
    async with pools[1].acquire() as erasing, erasing.transaction():  # as the eraser does
        await consent.lock_users(erasing, ["ana"])
        await erasing.execute("INSERT INTO erasures VALUES ($1, now())", consent.user_hash(salt, "ana"))
        await erasing.execute("DELETE FROM messages WHERE user_id = 'ana'")
        late = asyncio.create_task(write(pools[0], said("sent before the erasure", 1, "ana")))
        await until(lambda: waiting_for_an_advisory_lock(db), bool)
    assert await late == {"ana"}
    assert await count(db, "messages", "user_id = 'ana'") == 0


async def waiting_for_an_advisory_lock(db: asyncpg.Connection) -> bool:
    return await db.fetchval("SELECT count(*) > 0 FROM pg_locks WHERE NOT granted AND locktype = 'advisory'")


async def test_an_erased_user_who_comes_back_is_stored_again(pools, db):
    await write(pools[0], said("first life", 0, "ana"))
    salt = await consent.salt_of(pools[0])
    async with db.transaction():
        await db.execute("INSERT INTO erasures VALUES ($1, now())", consent.user_hash(salt, "ana"))
        await db.execute("DELETE FROM messages WHERE user_id = 'ana'")
        await db.execute("DELETE FROM conversations WHERE user_id = 'ana'")
        await db.execute("DELETE FROM users WHERE id = 'ana'")
    back = time.time() + 1
    assert await write(pools[1], user_message("ana", "a new account", at=back)) == set()
    assert await count(db, "users", "id = 'ana'") == 1
    assert [n for _, _, n in await conversations(db, "ana")] == [1]


async def test_each_users_privacy_settings_screen_the_batch(pools, db):
    chosen = "('quiet', false, true, now()), ('private', true, false, now())"  # storage off; analytics off
    await db.execute(f"INSERT INTO privacy_settings VALUES {chosen}")
    events = [said(f"from {u}", 0, u) for u in ("quiet", "private", "open")]
    events += [analytics_event(u, at=T0 + 1) for u in ("quiet", "private", "open")]
    await write(pools[0], *events)
    assert {r["user_id"] for r in await db.fetch("SELECT user_id FROM messages")} == {"private", "open"}
    analytics = sorted(r["user_id"] for r in await db.fetch("SELECT user_id FROM analytics_events"))
    assert analytics == ["", "open", "quiet"]  # private's are anonymous
