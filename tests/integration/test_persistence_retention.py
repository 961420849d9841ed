"""Retention against real PostgreSQL and real persistence processes: old rows go, in batches,
counted once however many instances delete at the same time; newer rows stay."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from pam_persistence import db as database
from pam_persistence import migrations
from pam_persistence.retention import Retention
from pam_shared.background import Tasks
from pam_shared.settings import load_retention_settings
from support.metrics import scrape, value
from support.persistence import answer, count, publish, until, user_message
from support.processes import ServiceProcess, free_port

TABLES = ("messages", "conversations", "analytics_events", "dead_letters", "users", "erasures")
NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=400)  # PAM_RETENTION_DAYS defaults to 365
KEPT = NOW - timedelta(days=300)
OLD_FENCE, KEPT_FENCE = NOW - timedelta(days=20), NOW - timedelta(days=2)  # fences: 14 days
RETENTION = {"PAM_RETENTION_INTERVAL_SECONDS": "1", "PAM_RETENTION_BATCH": "7"}
Ids = dict[str, set[str]]


async def seed(db: asyncpg.Connection, label: str, at: datetime, fenced_at: datetime, scale: int) -> Ids:
    """``scale`` users with 2 conversations of 3 messages each, and as many analytics rows, dead
    letters and erasure fences, all from ``at`` (fences from ``fenced_at``); returns their ids."""
    users = [f"{label}-user-{i}" for i in range(scale)]
    chats = [(uuid.uuid4(), user) for user in users for _ in range(2)]
    messages = [(f"{label}-m-{n}", c, u, "s1", "user", "where is diesel?", at) for n, (c, u) in enumerate(chats * 3)]
    await db.copy_records_to_table("users", records=[(u, at, at) for u in users])
    await db.copy_records_to_table("conversations", records=[(c, u, at, at, "") for c, u in chats])
    columns = ("id", "conversation_id", "user_id", "session_id", "role", "content", "created_at")
    await db.copy_records_to_table("messages", records=messages, columns=columns)
    analytics = [
        (f"{label}-a-{i}", f"{label}-user-0", "s1", "m", "general", "offline", "t", 5.0, at) for i in range(scale)
    ]
    columns = (
        "id",
        "user_id",
        "session_id",
        "message_id",
        "intent",
        "engine",
        "orchestrator",
        "total_ms",
        "created_at",
    )
    await db.copy_records_to_table("analytics_events", records=analytics, columns=columns)
    parked = await db.fetch(
        "INSERT INTO dead_letters (stream, stream_seq, subject, data, error, parked_at)"
        " SELECT $1, n, 'x', '\\x00', 'malformed', $2 FROM generate_series(1, $3) AS n RETURNING id",
        label,
        at,
        scale,
    )
    await db.copy_records_to_table("erasures", records=[(f"{label}-hash-{i}", fenced_at) for i in range(scale)])
    return {
        "messages": {m[0] for m in messages},
        "conversations": {str(c) for c, _ in chats},
        "analytics_events": {a[0] for a in analytics},
        "dead_letters": {str(row["id"]) for row in parked},
        "users": set(users),
        "erasures": {f"{label}-hash-{i}" for i in range(scale)},
    }


async def stored(db: asyncpg.Connection) -> Ids:
    keys = {"erasures": "user_hash"}
    return {t: {str(row[0]) for row in await db.fetch(f"SELECT {keys.get(t, 'id')} FROM {t}")} for t in TABLES}


async def a_user_active_across_the_cutoff(db: asyncpg.Connection) -> tuple[Ids, Ids]:
    """A user back now: an old conversation (goes), and one that ran from then to now, whose old
    message goes and whose new one stays with it.  Returns (removed, kept)."""
    old_chat, long_chat = uuid.uuid4(), uuid.uuid4()
    await db.execute("INSERT INTO users VALUES ('back', $1, $2)", OLD, NOW)
    await db.executemany(
        "INSERT INTO conversations VALUES ($1, 'back', $2, $3, '')", [(old_chat, OLD, OLD), (long_chat, OLD, NOW)]
    )
    await db.executemany(
        "INSERT INTO messages (id, conversation_id, user_id, session_id, role, content, created_at)"
        " VALUES ($1, $2, 'back', 's1', 'user', 'hello', $3)",
        [("back-old", old_chat, OLD), ("back-then", long_chat, OLD), ("back-now", long_chat, NOW)],
    )
    removed = {"messages": {"back-old", "back-then"}, "conversations": {str(old_chat)}}
    kept = {"messages": {"back-now"}, "conversations": {str(long_chat)}, "users": {"back"}}
    return removed, kept


def metered(port: int) -> dict[str, float]:
    samples = scrape(f"http://127.0.0.1:{port}/metrics")
    return {t: value(samples, "pam_persistence_retention_rows_removed_total", table=t) for t in TABLES}


def run_lines(process: ServiceProcess) -> list[str]:
    """The line each finished run prints."""
    return [line for line in process.lines if "retention run" in line and "removed" in line]


async def runs(process: ServiceProcess) -> int:
    return len(run_lines(process))


def merged(*parts: Ids) -> Ids:
    return {t: set().union(*(part.get(t, set()) for part in parts)) for t in TABLES}


async def test_retention_removes_old_rows_in_batches_and_keeps_newer_ones(database_url, db, js, names, stack):
    await migrations.apply(db)
    old = await seed(db, "old", OLD, OLD_FENCE, scale=10)
    newer = await seed(db, "newer", KEPT, KEPT_FENCE, scale=3)
    back_removed, back_kept = await a_user_active_across_the_cutoff(db)
    removed = merged(old, back_removed)
    port = free_port()
    persistence = stack.persistence(DATABASE_URL=database_url, PAM_METRICS_PORT=str(port), **RETENTION)
    chatted = [user_message("now", "fuel in Longreach?"), answer("now", "$1.95/L")]
    await publish(js, names, *chatted)
    await until(lambda: count(db, "messages", "user_id = 'now'"), lambda n: n == 2)
    finished = len(run_lines(persistence))
    await until(lambda: runs(persistence), lambda n: n >= finished + 2)  # so one began after they were stored

    left = await stored(db)
    for table in TABLES:
        assert not left[table] & removed[table], table
        assert newer[table] | back_kept.get(table, set()) <= left[table], table
    assert {e.event_id for e in chatted} <= left["messages"] and "now" in left["users"]
    assert metered(port) == {t: float(len(removed[t])) for t in TABLES}
    counts = ", ".join(f"{len(removed[t])} {t}" for t in TABLES)  # 62 messages, 21 conversations ...
    first = run_lines(persistence)[0]
    assert re.search(rf"retention run: removed {counts} \(data older than \d{{4}}-\d\d-\d\d [\d:]+ UTC, ", first)
    assert "old-user-" not in first and "where is diesel" not in first
    assert "removed 0 messages, 0 conversations" in run_lines(persistence)[-1]


async def test_two_instances_running_retention_at_once_remove_each_old_row_once(database_url, db, stack):
    await migrations.apply(db)
    old = await seed(db, "old", OLD, OLD_FENCE, scale=40)
    newer = await seed(db, "newer", KEPT, KEPT_FENCE, scale=5)
    ports = [free_port(), free_port()]
    blocker = await asyncpg.connect(database_url)
    try:
        async with blocker.transaction():  # both first runs wait on their first statement, then go together
            await blocker.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
            instances = [
                stack.persistence(
                    DATABASE_URL=database_url, PAM_METRICS_PORT=str(p), PAM_INSTANCE_ID=f"store-{i}", **RETENTION
                )
                for i, p in enumerate(ports)
            ]
            waiting = (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            await until(lambda: blocker.fetchval(waiting), lambda n: n == 2)
    finally:
        await blocker.close()
    for instance in instances:
        await until(lambda i=instance: runs(i), lambda n: n >= 2)  # the first run, and one after it

    left = await stored(db)
    for table in TABLES:
        assert not left[table] & old[table], table
        assert left[table] == newer[table], table
    removed = [metered(port) for port in ports]
    assert {t: removed[0][t] + removed[1][t] for t in TABLES} == {t: float(len(old[t])) for t in TABLES}
    assert not [line for i in instances for line in i.lines if "❌" in line or "Traceback" in line]


async def test_keeping_forever_still_lets_erasure_fences_expire(database_url, db, stack):
    await migrations.apply(db)
    old = await seed(db, "old", OLD, OLD_FENCE, scale=3)
    kept = await seed(db, "kept", KEPT, KEPT_FENCE, scale=2)
    persistence = stack.persistence(DATABASE_URL=database_url, PAM_RETENTION_DAYS="0", **RETENTION)
    await until(lambda: runs(persistence), lambda n: n >= 1)

    left = await stored(db)
    assert left["erasures"] == kept["erasures"]
    for table in TABLES[:-1]:
        assert left[table] == old[table] | kept[table], table
    assert "retention run: removed 3 erasures (data kept forever" in run_lines(persistence)[0]


async def test_a_failed_run_is_logged_and_the_next_one_runs_and_stopping_ends_the_loop(database_url, db, caplog):
    await migrations.apply(db)
    await seed(db, "old", OLD, OLD_FENCE, scale=2)
    await db.execute("ALTER TABLE erasures RENAME TO erasures_away")  # the last step of every run fails
    pool = await database.open_pool(database_url, 2)
    tasks = Tasks()
    retention = Retention(pool, load_retention_settings({"PAM_RETENTION_INTERVAL_SECONDS": "0.1"}))
    try:
        loop = retention.start(tasks)
        failed = "persistence-retention: handling a retention run failed"
        await until(lambda: _logged(caplog, failed), lambda n: n >= 2)
        assert tasks.healthy and await count(db, "messages") == 0  # the steps before it went through
        await db.execute("ALTER TABLE erasures_away RENAME TO erasures")
        await until(lambda: count(db, "erasures"), lambda n: n == 0)
        tasks.closing()  # as persistence's drain does: the loop ending now is no death
        await retention.stop()
        assert loop.done() and not loop.cancelled() and tasks.healthy
    finally:
        await tasks.stop()
        await pool.close()


async def _logged(caplog, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records)
