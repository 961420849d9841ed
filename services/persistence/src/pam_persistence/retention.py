"""Retention: a background loop deletes rows older than ``PAM_RETENTION_DAYS``, and erasure
fences older than ``PAM_ERASURE_FENCE_DAYS``, soon after start and then every
``PAM_RETENTION_INTERVAL_SECONDS``.

Each batch is its own short transaction: lock up to ``PAM_RETENTION_BATCH`` old rows with
``FOR UPDATE SKIP LOCKED``, then delete them.  Instances running at once share the work
instead of waiting on each other, and each row is deleted, and counted, by exactly one.  No
advisory lock elects one instance: behind a transaction-mode pooler (Supabase's) a session
lock sticks to whichever server connection took it and can outlive its taker there, and
skipping locked rows needs none.

Messages go first: a conversation's last activity is its latest message, so every message
of an old conversation is itself old.  Then conversations left empty, then users left
without conversations.  A parent is deleted by a second statement that looks for children
again while the first one's lock holds off new ones (their foreign key check waits on it),
so a late event committed meanwhile keeps its conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from pam_shared import logs
from pam_shared.background import Tasks, survive
from pam_shared.settings import RetentionSettings

from pam_persistence import metrics

log = logging.getLogger("pam.persistence.retention")

TASK = "persistence-retention"
STOP_WAIT_SECONDS = 5.0
"""How long stopping waits for the batch in hand; ``Tasks.stop`` cancels one that takes longer."""


@dataclass(frozen=True, slots=True)
class Step:
    """One table: ``lock`` takes the cutoff and the batch size and returns the ids it locked,
    ``delete`` takes those ids and deletes the ones still to go."""

    table: str
    lock: str
    delete: str


_NO_MESSAGES = "NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id)"
_NO_CONVERSATIONS = "NOT EXISTS (SELECT 1 FROM conversations c WHERE c.user_id = u.id)"


def _leaf(table: str, key: str, key_type: str, age: str) -> Step:
    return Step(
        table,
        f"SELECT {key} FROM {table} WHERE {age} < $1 ORDER BY {age} LIMIT $2 FOR UPDATE SKIP LOCKED",
        f"DELETE FROM {table} WHERE {key} = ANY($1::{key_type}[])",
    )


DATA_STEPS = (
    _leaf("messages", "id", "text", "created_at"),
    Step(
        "conversations",
        f"SELECT id FROM conversations c WHERE last_activity_at < $1 AND {_NO_MESSAGES}"
        " ORDER BY last_activity_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        f"DELETE FROM conversations c WHERE id = ANY($1::uuid[]) AND {_NO_MESSAGES}",
    ),
    _leaf("analytics_events", "id", "text", "created_at"),
    _leaf("dead_letters", "id", "bigint", "parked_at"),
    Step(
        "users",
        f"SELECT id FROM users u WHERE last_seen_at < $1 AND {_NO_CONVERSATIONS} LIMIT $2 FOR UPDATE SKIP LOCKED",
        f"DELETE FROM users u WHERE id = ANY($1::text[]) AND {_NO_CONVERSATIONS}",
    ),
)
"""In this order: children before their parents.  Skipped when ``PAM_RETENTION_DAYS`` is 0."""

FENCE_STEP = _leaf("erasures", "user_hash", "text", "erased_at")


class Retention:
    def __init__(self, pool: asyncpg.Pool, settings: RetentionSettings) -> None:
        self.pool = pool
        self.settings = settings
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self, tasks: Tasks) -> asyncio.Task[None]:
        self._task = tasks.start(TASK, self._run())
        return self._task

    async def stop(self) -> None:
        """Finish the batch in hand and end the loop."""
        self._stopping.set()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=STOP_WAIT_SECONDS)

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            with survive(TASK, "a retention run"):
                await self.run_once()
            if await self._stopped_within(self.settings.interval_seconds - (time.monotonic() - started)):
                return

    async def run_once(self) -> dict[str, int]:
        """Delete what is too old, table by table; return how many rows went from each."""
        started, now = time.monotonic(), datetime.now(UTC)
        cutoff = None if self.settings.keeps_forever else now - timedelta(days=self.settings.days)
        fence = now - timedelta(days=self.settings.erasure_fence_days)
        plan = [(step, cutoff) for step in DATA_STEPS if cutoff is not None] + [(FENCE_STEP, fence)]
        removed = {}
        for step, before in plan:
            if self._stopping.is_set():
                break
            removed[step.table] = await self._remove(step, before)
        log.info(
            "retention run%s: removed %s (data %s, erasure fences older than %s) in %.2f s",
            " (stopped early)" if self._stopping.is_set() else "",
            ", ".join(f"{n} {table}" for table, n in removed.items()) or "nothing",
            "kept forever" if cutoff is None else f"older than {cutoff:%Y-%m-%d %H:%M:%S} UTC",
            f"{fence:%Y-%m-%d %H:%M:%S} UTC",
            time.monotonic() - started,
            extra={"marker": logs.OK},
        )
        return removed

    async def _remove(self, step: Step, before: datetime) -> int:
        """Batch after batch until one finds fewer rows to lock than it may take."""
        total = 0
        while not self._stopping.is_set():
            locked, deleted = await self._batch(step, before)
            total += deleted
            if locked < self.settings.batch:
                break
        return total

    async def _batch(self, step: Step, before: datetime) -> tuple[int, int]:
        async with self.pool.acquire() as conn, conn.transaction():
            ids = [row[0] for row in await conn.fetch(step.lock, before, self.settings.batch)]
            status = await conn.execute(step.delete, ids) if ids else "DELETE 0"
        deleted = int(status.split()[-1])
        metrics.retention_rows_removed.labels(step.table).inc(deleted)
        return len(ids), deleted

    async def _stopped_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), max(seconds, 0))
        return self._stopping.is_set()
