"""Where a persistence batch's time goes: every PostgreSQL statement it awaits, by kind.

Loaded into each ``pam-persistence`` that ``bench/persistence_ingest.py --statements`` starts
(as ``sitecustomize``, through ``PYTHONPATH``), so the services themselves are untouched and a
commit from before this file measures the same way.  Each awaited statement's wall time (what
the batch waits for, the event loop's other work during the wait included) is added to its
kind, and each ``store.write`` call (one batch, one transaction) to ``batch``; the totals go to
the file ``$PAM_BENCH_STATEMENTS`` names when the process exits.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

OUT = os.environ.get("PAM_BENCH_STATEMENTS")
KINDS = (
    ("pg_advisory_xact_lock", "lock"),
    ("FROM unnest($1::text[], $2::text[]) AS batch", "known"),
    ("FROM erasures", "fences"),
    ("FROM privacy_settings", "privacy"),
    ("INSERT INTO users", "users upsert"),
    ("FROM conversations", "spans read"),
    ("max(m.created_at)", "spans resolved"),
    ("INSERT INTO conversations", "conversations upsert"),
    ("FROM messages WHERE id = wanted.id", "stored ids (messages)"),
    ("FROM analytics_events WHERE id = wanted.id", "stored ids (analytics)"),
    ("INSERT INTO dead_letters", "dead letters"),
    ("BEGIN", "begin"),
    ("COMMIT", "commit"),
    ("ROLLBACK", "rollback"),
    ("RESET ALL", "pool reset"),
)
totals: dict[str, list[float]] = {}


def kind(query: str) -> str:
    return next((name for text, name in KINDS if text in query), " ".join(query.split())[:40])


def add(name: str, seconds: float) -> None:
    count, total = totals.get(name, [0, 0.0])
    totals[name] = [count + 1, total + seconds]


def timed(
    method: Callable[..., Coroutine[Any, Any, Any]], name_of: Callable[[tuple[Any, ...]], str]
) -> Callable[..., Coroutine[Any, Any, Any]]:
    @functools.wraps(method)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await method(self, *args, **kwargs)
        finally:
            add(name_of(args), time.perf_counter() - started)

    return wrapper


def write() -> None:
    if OUT:
        figures = {name: {"count": int(c), "ms": round(s * 1000, 1)} for name, (c, s) in sorted(totals.items())}
        with open(OUT, "w") as out:
            json.dump(figures, out, indent=1)


def install() -> None:
    from asyncpg import connection
    from pam_persistence import store

    for method in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
        original = getattr(connection.Connection, method)
        setattr(connection.Connection, method, timed(original, lambda args: kind(args[0])))
    original = connection.Connection.copy_records_to_table
    connection.Connection.copy_records_to_table = timed(original, lambda args: f"COPY {args[0]}")
    store.write = timed(store.write, lambda args: "batch")
    atexit.register(write)


if OUT:
    install()
