"""Persistence ingest: events through JetStream into PostgreSQL, beside a raw COPY of the same rows.

Starts real ``pam-persistence`` processes on a database and NATS namespace of its own, then

1. steady: publishes ``--events`` events (each chat is a user message and an ``answer``
   carrying the assistant message and its analytics: three rows; with ``--old-style``, the
   assistant message and the analytics event apart, as orchestrators published them before
   ``answer``) at ``--rate`` events/s, sampling the shared consumer's lag
   (``num_pending + num_ack_pending`` from consumer info) as it goes;
2. backlog: stops persistence, publishes ``--backlog`` events, starts it again and times
   the drain in rows/s (the "persistence was down" case, and the most it can write per second);
3. yardsticks: the very rows that were written (``messages`` and ``analytics_events``),
   emptied out and written back into the same tables in the order their
   events came, one transaction per batch: with asyncpg's raw COPY, and with each way the
   writer could insert them idempotently (executemany, COPY into a temporary table + INSERT
   ... SELECT, INSERT ... SELECT FROM unnest, all with ``ON CONFLICT DO NOTHING``; and the
   writer's own: look up which ids are stored, COPY the rest).
   The drain also upserts users and conversations (derived from the events): that work
   is the pipeline's own, and stays out of the yardsticks.

Prints a table and writes ``bench/results/persistence_ingest.json``; drops its database and
stream afterwards.  ``--quick`` finishes in well under a minute.  ``--statements`` also times,
inside the persistence processes, every statement of the backlog's batches by kind
(``bench/statement_times``), and prints the time per batch each kind took.

    .venv/bin/python bench/persistence_ingest.py [--quick] [--events N] [--rate R] [--instances K] [--old-style]
        [--statements]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

import asyncpg
import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from pam_shared.events import (
    SUBJECT_KIND,
    AnalyticsEvent,
    Answer,
    AssistantMessage,
    Event,
    UserMessage,
    event_encoder,
)
from pam_shared.journal import ensure_stream
from pam_shared.subjects import Subjects

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results" / "persistence_ingest.json"
STATEMENT_TIMES = ROOT / "bench" / "statement_times"
SAMPLE_SECONDS = 0.25
TICK_SECONDS = 0.01
DRAIN_POLL_SECONDS = 0.02
START_SECONDS = 60.0
USERS = 500
METHOD_REPEATS = 3
SMALL_BATCH = 20
ROWS = {UserMessage: 1, AssistantMessage: 1, AnalyticsEvent: 1, Answer: 2}
"""Rows each kind of event becomes (an answer: its message and its analytics)."""


@dataclass
class Options:
    events: int
    rate: float
    backlog: int
    instances: int
    batch_size: int
    flush_ms: float
    old_style: bool
    statements: bool
    nats_url: str
    postgres_url: str


@dataclass
class Sample:
    t: float
    published: int
    lag: int


@dataclass
class Results:
    options: dict[str, object]
    steady: dict[str, object] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    backlog: dict[str, object] = field(default_factory=dict)
    yardsticks: dict[str, dict[str, float]] = field(default_factory=dict)
    statements: dict[str, Any] = field(default_factory=dict)


def parse() -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run, under a minute")
    parser.add_argument("--events", type=int, help="events in the steady phase (default 30000; quick 6000)")
    parser.add_argument("--rate", type=float, help="events/s in the steady phase (default 2000; quick 1000)")
    parser.add_argument("--backlog", type=int, help="events in the backlog phase (default 30000; quick 9000)")
    parser.add_argument("--instances", type=int, default=1, help="persistence processes (default 1)")
    parser.add_argument("--batch-size", type=int, default=500, help="PAM_PERSIST_BATCH_SIZE")
    parser.add_argument("--flush-ms", type=float, default=50.0, help="PAM_PERSIST_FLUSH_MS")
    parser.add_argument("--old-style", action="store_true", help="assistant message + analytics event per chat")
    parser.add_argument("--statements", action="store_true", help="time the backlog's statements by kind")
    args = parser.parse_args()
    quick = args.quick
    return Options(
        events=args.events or (6000 if quick else 30000),
        rate=args.rate or (1000.0 if quick else 2000.0),
        backlog=args.backlog or (9000 if quick else 30000),
        instances=args.instances,
        batch_size=args.batch_size,
        flush_ms=args.flush_ms,
        old_style=args.old_style,
        statements=args.statements,
        nats_url=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
        postgres_url=os.environ.get("PAM_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )


def chat_events(users: list[str], old_style: bool) -> list[Event]:
    """One chat's events, as the gateway and an orchestrator record them (before ``answer``: three)."""
    user, now, answer = random.choice(users), time.time(), uuid.uuid4().hex
    asked = f"q-{uuid.uuid4().hex[:8]}"
    question = UserMessage(
        uuid.uuid4().hex, "bench", user, "I spent $42 on diesel in Longreach", now, asked, "Queensland"
    )
    text = "Logged $42 for fuel."
    if not old_style:
        return [question, Answer(answer, "bench", user, text, "expense", now, "offline", None, "bench", 12.5, asked)]
    return [
        question,
        AssistantMessage(answer, "bench", user, answer, text, "expense", now, asked),
        AnalyticsEvent(uuid.uuid4().hex, "bench", user, answer, "expense", "offline", None, "bench", 12.5, now),
    ]


def events_for(count: int, old_style: bool) -> list[Event]:
    users = [f"user-{i}" for i in range(USERS)]
    events: list[Event] = []
    while len(events) < count:
        events.extend(chat_events(users, old_style))
    return events[:count]


def rows_of(events: list[Event]) -> int:
    return sum(ROWS[type(e)] for e in events)


async def publish(js: JetStreamContext, names: Subjects, event: Event) -> None:
    subject = names.event(SUBJECT_KIND[type(event)], event.user_id)
    await js.publish_async(subject, event_encoder.encode(event), headers={"Nats-Msg-Id": event.event_id})


async def lag(js: JetStreamContext, names: Subjects) -> int:
    info = await js.consumer_info(names.events_stream, names.persistence_consumer)
    return (info.num_pending or 0) + (info.num_ack_pending or 0)


async def drained(js: JetStreamContext, names: Subjects) -> None:
    """Return once every published event has been written (acked)."""
    while True:
        if not await lag(js, names):
            return
        await asyncio.sleep(DRAIN_POLL_SECONDS)


async def first_delivery(js: JetStreamContext, names: Subjects, waiting: int, fleet: Fleet) -> float:
    """When the drain began: the last moment nothing had been delivered yet (so a drain is never
    timed short).  Not when the instances say they are ready: a writer starts before its
    service answers, and a fast one has drained a small backlog by then."""
    deadline = time.monotonic() + START_SECONDS
    before = time.monotonic()
    while time.monotonic() < deadline:
        info = await js.consumer_info(names.events_stream, names.persistence_consumer)
        if (info.num_pending or 0) < waiting:
            return before
        before = time.monotonic()
        await asyncio.sleep(DRAIN_POLL_SECONDS)
    raise RuntimeError(f"persistence took no event in {START_SECONDS} s; logs in {fleet.log_dir}")


class Fleet:
    """The persistence processes under test."""

    def __init__(self, options: Options, names: Subjects, database_url: str) -> None:
        self.options, self.names, self.database_url = options, names, database_url
        self.log_dir = Path(tempfile.mkdtemp(prefix="pam-bench-persistence-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[BinaryIO] = []
        self.starts = 0

    def timings(self) -> list[Path]:
        """The statement times of the instances of the latest start (once they have stopped)."""
        return sorted(self.log_dir.glob(f"statements-{self.starts}-*.json"))

    def start(self) -> None:
        self.starts += 1
        for i in range(self.options.instances):
            env = {
                **os.environ,
                "NATS_URL": self.options.nats_url,
                "PAM_NATS_NAMESPACE": self.names.namespace,
                "DATABASE_URL": self.database_url,
                "PAM_PERSIST_BATCH_SIZE": str(self.options.batch_size),
                "PAM_PERSIST_FLUSH_MS": str(self.options.flush_ms),
                "PAM_INSTANCE_ID": f"bench-{i}",
                "PAM_LOG_LEVEL": "info",
            }
            if self.options.statements:
                env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(STATEMENT_TIMES), env.get("PYTHONPATH"))))
                env["PAM_BENCH_STATEMENTS"] = str(self.log_dir / f"statements-{self.starts}-{i}.json")
            self.logs.append(open(self.log_dir / f"persistence-{i}.log", "ab"))
            command = [str(BIN / "pam-persistence")]
            self.procs.append(subprocess.Popen(command, env=env, stdout=self.logs[-1], stderr=subprocess.STDOUT))

    async def ready(self, nc: Client, timeout: float = 30.0) -> None:
        """Every instance answers ``$SRV.PING`` (it registers once its database is migrated)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox)
            await nc.publish(f"$SRV.PING.{self.names.persistence_service}", b"", reply=inbox)
            answered = 0
            while answered < len(self.procs):
                try:
                    reply = await sub.next_msg(timeout=0.5)
                except TimeoutError:
                    break
                answered += not (reply.headers and reply.headers.get("Status") == "503")  # 503: nobody yet
            await sub.unsubscribe()
            if answered == len(self.procs):
                return
        raise RuntimeError(f"persistence did not become ready; logs in {self.log_dir}")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(15)
        for log in self.logs:
            log.close()
        self.procs.clear()
        self.logs.clear()


async def steady(js: JetStreamContext, names: Subjects, options: Options, results: Results) -> None:
    """Publish at a steady rate while a sampler records lag; then wait for the writer to catch up."""
    events = events_for(options.events, options.old_style)
    published = [0]
    sampler = asyncio.create_task(sample(js, names, published, results.samples))
    started = time.monotonic()
    for i, event in enumerate(events):
        due = started + i / options.rate
        if due - time.monotonic() > TICK_SECONDS:
            await asyncio.sleep(due - time.monotonic())
        await publish(js, names, event)
        published[0] = i + 1
    await js.publish_async_completed()
    publish_seconds = time.monotonic() - started
    await drained(js, names)
    total_seconds = time.monotonic() - started
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    lags = [s.lag for s in results.samples]
    results.steady = {
        "events": options.events,
        "rows": rows_of(events),
        "published_per_second": round(options.events / publish_seconds),
        "written_per_second": round(options.events / total_seconds),
        "catch_up_seconds": round(total_seconds - publish_seconds, 3),
        "lag_p50": statistics.median(lags) if lags else 0,
        "lag_max": max(lags, default=0),
    }


async def sample(js: JetStreamContext, names: Subjects, published: list[int], samples: list[Sample]) -> None:
    started = time.monotonic()
    while True:
        samples.append(Sample(round(time.monotonic() - started, 2), published[0], await lag(js, names)))
        await asyncio.sleep(SAMPLE_SECONDS)


async def backlog(nc: Client, names: Subjects, fleet: Fleet, options: Options, results: Results) -> None:
    """Persistence down while events pile up; started again, how fast does it drain them?"""
    js = nc.jetstream()
    fleet.stop()
    events = events_for(options.backlog, options.old_style)
    for event in events:
        await publish(js, names, event)
    await js.publish_async_completed()
    fleet.start()
    started = await first_delivery(js, names, len(events), fleet)
    await drained(js, names)
    seconds = time.monotonic() - started
    if options.statements:
        fleet.stop()
        results.statements = per_batch([json.loads(path.read_text()) for path in fleet.timings()])
    results.backlog = {
        "events": options.backlog,
        "rows": rows_of(events),
        "drain_seconds": round(seconds, 3),
        "written_per_second": round(options.backlog / seconds),
        "rows_per_second": round(rows_of(events) / seconds),
    }


def per_batch(timings: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    """Every instance's statement times added up: how many batches, and per batch each kind's
    milliseconds and calls."""
    total: dict[str, list[float]] = {}
    for timing in timings:
        for name, figures in timing.items():
            count, ms = total.get(name, [0, 0.0])
            total[name] = [count + figures["count"], ms + figures["ms"]]
    batches = total.get("batch", [0, 0.0])[0] or 1
    kinds = {name: {"ms": round(ms / batches, 2), "calls": round(n / batches, 2)} for name, (n, ms) in total.items()}
    return {"batches": batches, "per_batch": kinds}


WRITTEN_TABLES = ("messages", "analytics_events")
"""The tables the drain writes one row per event into: what the yardsticks write again."""
METHODS = (
    "copy (raw, no conflict check)",
    "executemany",
    "copy to temp + insert select",
    "unnest",
    "stored-id check + copy",
)
STORED_IDS = """
SELECT stored.id FROM unnest($1::text[]) AS wanted (id),
    LATERAL (SELECT id FROM {table} WHERE id = wanted.id LIMIT 1) AS stored
"""
"""The writer's look-up (``pam_persistence.store``): an index probe per id."""
COLUMN_TYPES = """
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum
"""


@dataclass
class Table:
    """A table the drain wrote: its column types and its stored rows, both in column order."""

    name: str
    types: list[str]
    rows: list[asyncpg.Record]


Batch = list[tuple[Table, list[asyncpg.Record]]]


async def stored(conn: asyncpg.Connection, name: str) -> Table:
    types = [row[0] for row in await conn.fetch(COLUMN_TYPES, name)]
    return Table(name, types, await conn.fetch(f"SELECT * FROM {name}"))


def batches(tables: list[Table], size: int) -> list[Batch]:
    """Every row in the order its event came, cut every ``size`` rows as the writer's batches are,
    each batch split by table."""
    ordered = sorted(((t, r) for t in tables for r in t.rows), key=lambda pair: pair[1]["created_at"])
    cuts = (ordered[i : i + size] for i in range(0, len(ordered), size))
    return [[(t, [r for owner, r in cut if owner is t]) for t in tables] for cut in cuts]


async def insert(conn: asyncpg.Connection, method: str, table: Table, rows: list[asyncpg.Record]) -> None:
    """Write ``rows`` into ``table`` the way ``method`` says."""
    if not rows:
        return
    if method == "copy (raw, no conflict check)":
        await conn.copy_records_to_table(table.name, records=rows)
    elif method == "executemany":
        values = ", ".join(f"${i + 1}" for i in range(len(table.types)))
        await conn.executemany(f"INSERT INTO {table.name} VALUES ({values}) ON CONFLICT DO NOTHING", rows)
    elif method == "stored-id check + copy":
        stored_ids = {r["id"] for r in await conn.fetch(STORED_IDS.format(table=table.name), [r["id"] for r in rows])}
        await conn.copy_records_to_table(table.name, records=[r for r in rows if r["id"] not in stored_ids])
    elif method == "copy to temp + insert select":
        await conn.copy_records_to_table(f"staged_{table.name}", records=rows)
        await conn.execute(f"INSERT INTO {table.name} SELECT * FROM staged_{table.name} ON CONFLICT DO NOTHING")
    else:
        arrays = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(table.types))
        columns = [list(column) for column in zip(*rows, strict=True)]
        await conn.execute(f"INSERT INTO {table.name} SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING", *columns)


async def rows_per_second(conn: asyncpg.Connection, method: str, cut: list[Batch]) -> float:
    """Empty the tables, then write every batch back, one transaction each."""
    rows = sum(len(rows) for batch in cut for _, rows in batch)
    await conn.execute(f"TRUNCATE {', '.join(WRITTEN_TABLES)}")
    started = time.perf_counter()
    for batch in cut:
        async with conn.transaction():
            for table, table_rows in batch:
                await insert(conn, method, table, table_rows)
    return rows / (time.perf_counter() - started)


async def yardsticks(database_url: str, options: Options, results: Results) -> None:
    """The stored rows, written again into their own tables by each method at two batch sizes (rows/s,
    best of METHOD_REPEATS).  The methods take turns within each repeat, so a busy moment of the
    shared machine falls on any of them alike, not on whichever runs first."""
    conn = await asyncpg.connect(database_url)
    try:
        tables = [await stored(conn, name) for name in WRITTEN_TABLES]
        for name in WRITTEN_TABLES:
            await conn.execute(f"CREATE TEMP TABLE staged_{name} (LIKE {name}) ON COMMIT DELETE ROWS")
        cuts = {size: batches(tables, size) for size in (SMALL_BATCH, options.batch_size)}
        runs: dict[tuple[str, int], list[float]] = {}
        for _ in range(METHOD_REPEATS):
            for method in METHODS:
                for size, cut in cuts.items():
                    runs.setdefault((method, size), []).append(await rows_per_second(conn, method, cut))
        for method in METHODS:
            results.yardsticks[method] = {f"batch {size}": round(max(runs[method, size])) for size in cuts}
        results.yardsticks["rows"] = {t.name: len(t.rows) for t in tables}
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_database(admin_url: str) -> AsyncIterator[str]:
    name = f"pam_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlparse(admin_url)._replace(path=f"/{name}").geturl()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def run(options: Options) -> Results:
    options_shown = {k: v for k, v in asdict(options).items() if not k.endswith("_url")}
    results = Results(options={**options_shown, "load_average_at_start": os.getloadavg()[0]})
    names = Subjects(f"bench{uuid.uuid4().hex[:8]}")
    nc = await nats.connect(options.nats_url)
    js = nc.jetstream()
    try:
        await ensure_stream(js, names)
        async with scratch_database(options.postgres_url) as database_url:
            fleet = Fleet(options, names, database_url)
            fleet.start()
            try:
                await fleet.ready(nc)
                await steady(js, names, options, results)
                await backlog(nc, names, fleet, options, results)
            finally:
                fleet.stop()
            await check_complete(database_url, results.steady["rows"] + results.backlog["rows"])
            await yardsticks(database_url, options, results)
    finally:
        await js.delete_stream(names.events_stream)
        await nc.close()
    return results


async def check_complete(database_url: str, expected: object) -> None:
    """Every published event is its rows: the numbers above count nothing that was lost."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetchval("SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM analytics_events)")
    finally:
        await conn.close()
    if rows != expected:
        raise RuntimeError(f"{expected} rows published but {rows} rows stored")


def report(results: Results) -> None:
    o, s, b, y = results.options, results.steady, results.backlog, results.yardsticks
    print(
        f"persistence ingest: {o['instances']} instance(s), batch {o['batch_size']}, flush {o['flush_ms']:g} ms,"
        f" {'old-style events (3 per chat)' if o['old_style'] else 'answer events (2 per chat)'}"
        f" (load average {o['load_average_at_start']:.1f} on {os.cpu_count()} CPUs at start)"
    )
    print(f"  steady   {s['events']} events offered at {o['rate']:g}/s (published {s['published_per_second']}/s):")
    print(f"           written {s['written_per_second']}/s, caught up {s['catch_up_seconds']} s after the last publish")
    print(f"           consumer lag: median {s['lag_p50']:g}, max {s['lag_max']} events")
    print(
        f"  backlog  {b['events']} events ({b['rows']} rows) drained in {b['drain_seconds']} s:"
        f" {b['written_per_second']} events/s, {b['rows_per_second']} rows/s"
    )
    print(f"  lag over time (every {SAMPLE_SECONDS} s; t, published, lag):")
    step = max(1, len(results.samples) // 12)
    for sample in results.samples[::step]:
        print(f"           {sample.t:6.2f} s {sample.published:8d} {sample.lag:7d}")
    stored_rows = ", ".join(f"{count} {name}" for name, count in y["rows"].items())
    print(f"  yardsticks: the stored rows ({stored_rows}) written again (rows/s, best of {METHOD_REPEATS})")
    print(f"           {'method':32} {'batch ' + str(SMALL_BATCH):>10} {'batch ' + str(o['batch_size']):>10}")
    for method, by_batch in y.items():
        if method != "rows":
            print(f"           {method:32} " + " ".join(f"{v:>10}" for v in by_batch.values()))
    raw = y["copy (raw, no conflict check)"][f"batch {o['batch_size']}"]
    ratio = b["rows_per_second"] / raw
    print(f"  pipeline drain / raw COPY (rows/s): {b['rows_per_second']} / {raw} = {ratio:.2f}")
    if results.statements:
        print(f"  backlog statements per batch ({results.statements['batches']} batches; ms, calls):")
        for name, figures in sorted(results.statements["per_batch"].items(), key=lambda item: -item[1]["ms"]):
            print(f"           {name:32} {figures['ms']:8.2f} {figures['calls']:6.2f}")


def main() -> None:
    options = parse()
    results = asyncio.run(run(options))
    report(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(asdict(results), indent=2) + "\n")
    print(f"  written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
