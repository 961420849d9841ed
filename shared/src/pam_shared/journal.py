"""Recording events into JetStream without slowing the chat path, and without losing them.

``record`` returns at once: the event joins a bounded queue in memory that one writer
task publishes, a small batch at a time concurrently, with the event's id as
``Nats-Msg-Id`` (the stream's duplicate window makes retries harmless).  While JetStream
cannot take events the writer retries the batch forever, with capped backoff.  Events
beyond ``max_pending`` go to a spool file on local disk (``pam_shared.spool``), written
by a second task so a slow disk never holds up the chat path; the writer publishes them
once memory is empty.  ``close`` publishes what it can within a bound and spools the
rest; ``start`` replays what earlier runs of the same service kind left spooled.  An
event replayed after the duplicate window can reach the stream twice: persistence
stores it once (its id is the row's primary key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from prometheus_client import Counter, Gauge

from pam_shared import jetstream, logs
from pam_shared.events import SUBJECT_KIND, Event, event_encoder
from pam_shared.settings import JournalSettings, Settings
from pam_shared.spool import Record, Spool
from pam_shared.subjects import Subjects

log = logging.getLogger("pam.journal")

DUPLICATE_WINDOW_SECONDS = 120.0
MAX_AGE_SECONDS = 7 * 24 * 3600.0
BATCH = 64
"""Publishes in flight at once: concurrent acks are far faster than one at a time."""
PUBLISH_TIMEOUT_SECONDS = 2.0
BACKOFF_SECONDS = (0.1, 5.0)
"""First retry delay and its cap; the delay doubles in between."""
CLOSE_TIMEOUT_SECONDS = 5.0
"""How long ``close`` keeps publishing before it spools what is left."""

pending_events = Gauge("pam_journal_pending_events", "Events held in memory, not yet acknowledged by JetStream")
spooled_events = Gauge("pam_journal_spooled_events", "Events spooled to local disk, not yet published")
journal_errors = Counter("pam_journal_errors_total", "Unexpected errors of the journal's tasks (they carry on)")


async def ensure_stream(js: JetStreamContext, subjects: Subjects, replicas: int = 1) -> None:
    """Create the events stream, or bring it to this configuration (every publisher calls this at start)."""
    config = StreamConfig(
        name=subjects.events_stream,
        subjects=[subjects.events_wildcard],
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        max_age=MAX_AGE_SECONDS,
        num_replicas=replicas,
    )
    await jetstream.ensure_stream(js, config)


class Backoff:
    """Capped exponential delays, reset by a success."""

    def __init__(self, first: float, cap: float) -> None:
        self.first, self.cap, self.delay = first, cap, first

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        self.delay = self.first


class Journal:
    def __init__(self, nc: Client, subjects: Subjects, spool: Spool, max_pending: int) -> None:
        self.js = nc.jetstream()
        self.subjects = subjects
        self.spool = spool
        self.max_pending = max_pending
        self._pending: list[Record] = []
        self._overflow: list[Record] = []
        self._batch: list[Record] = []
        self._batch_spooled = False
        self._behind = False
        self._spooling = False
        self._work = asyncio.Event()
        self._spill = asyncio.Event()
        self._progress = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def for_service(cls, nc: Client, settings: Settings, journal: JournalSettings, service: str) -> Journal:
        """The journal of one process; its spool is shared by every instance of ``service``."""
        directory = Path(journal.spool_dir) / settings.nats_namespace / service
        spool = Spool(directory, settings.instance_id)
        return cls(nc, settings.subjects, spool, journal.max_pending)

    async def start(self, replicas: int = 1) -> None:
        await ensure_stream(self.js, self.subjects, replicas)
        if left := await asyncio.to_thread(self.spool.claim_leftovers):
            log.info("replaying %d events spooled by an earlier run", left, extra={"marker": logs.RECONNECT})
            self._behind = True
        self._tasks = [asyncio.create_task(self._write()), asyncio.create_task(self._spill_overflow())]
        self._work.set()
        self._update_gauges()

    def record(self, event: Event, headers: dict[str, str] | None = None) -> None:
        """Queue ``event`` for publishing; never blocks, never drops it while the process lives."""
        subject = self.subjects.event(SUBJECT_KIND[type(event)], event.user_id)
        record = Record(subject, {**(headers or {}), "Nats-Msg-Id": event.event_id}, event_encoder.encode(event))
        if len(self._pending) < self.max_pending:
            self._pending.append(record)
            self._work.set()
        else:
            self._overflow.append(record)
            self._spill.set()
        self._update_gauges()

    @property
    def in_memory(self) -> int:
        """Events only this process holds: queued, spilling, or in a batch not read from disk."""
        return len(self._pending) + len(self._overflow) + (0 if self._batch_spooled else len(self._batch))

    async def close(self) -> None:
        """Publish what memory holds for up to ``CLOSE_TIMEOUT_SECONDS``, then spool the rest."""
        deadline = time.monotonic() + CLOSE_TIMEOUT_SECONDS
        while self.in_memory and self._tasks and (left := deadline - time.monotonic()) > 0:
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), left)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        rest = [*([] if self._batch_spooled else self._batch), *self._pending, *self._overflow]
        if rest:
            await self._spool_at_close(rest)
        self._batch, self._pending, self._overflow = [], [], []
        await asyncio.to_thread(self.spool.close)
        self._update_gauges()

    async def _spool_at_close(self, rest: list[Record]) -> None:
        try:
            await asyncio.to_thread(self.spool.append, rest)
        except OSError as exc:  # the one loss left: say so loudly, and still close
            journal_errors.inc()
            log.error(
                "%d events lost: cannot spool to %s: %s", len(rest), self.spool.where, exc, extra={"marker": logs.ERROR}
            )
            return
        log.warning(
            "closing with %d events unpublished: spooled to %s for the next start",
            len(rest),
            self.spool.where,
            extra={"marker": logs.ERROR},
        )

    async def _write(self) -> None:
        """The one writer: an error handling a batch is logged and counted, and it goes on."""
        backoff = Backoff(*BACKOFF_SECONDS)
        while True:
            try:
                await self._step(backoff)
            except Exception:
                journal_errors.inc()
                log.exception("journal writer failed; carrying on", extra={"marker": logs.ERROR})
                await asyncio.sleep(backoff.next())
            self._progress.set()

    async def _step(self, backoff: Backoff) -> None:
        if not self._batch:
            self._work.clear()  # before looking, so an event recorded meanwhile is not missed
            if not await self._take():
                await self._work.wait()
                return
        self._batch, error = await self._publish(self._batch)
        if error is not None:
            self._fell_behind(error)
            await asyncio.sleep(backoff.next())
            return
        if self._batch_spooled:
            await asyncio.to_thread(self.spool.commit)
        self._batch_spooled = False
        backoff.reset()
        self._update_gauges()
        if self._behind and not self.in_memory and not self.spool.count:
            self._behind = self._spooling = False
            log.info("journal caught up: every held event is in JetStream", extra={"marker": logs.OK})

    async def _take(self) -> bool:
        """Fill the next batch: from memory first (the live events), else from the spool."""
        if self._pending:
            self._batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
            self._batch_spooled = False
        elif self.spool.count:
            self._batch = await asyncio.to_thread(self.spool.read, BATCH)
            self._batch_spooled = bool(self._batch)
        return bool(self._batch)

    async def _publish(self, batch: list[Record]) -> tuple[list[Record], BaseException | None]:
        """Publish ``batch`` concurrently; returns the records that failed and the first error."""
        results = await asyncio.gather(
            *(self.js.publish(r.subject, r.data, PUBLISH_TIMEOUT_SECONDS, headers=r.headers) for r in batch),
            return_exceptions=True,
        )
        failed = [(r, e) for r, e in zip(batch, results, strict=True) if isinstance(e, BaseException)]
        return [r for r, _ in failed], failed[0][1] if failed else None

    def _fell_behind(self, error: BaseException) -> None:
        if not self._behind:
            self._behind = True
            log.warning(
                "journal falling behind: JetStream does not take events (%s); retrying until it does",
                str(error) or type(error).__name__,
                extra={"marker": logs.ERROR},
            )

    async def _spill_overflow(self) -> None:
        """Move what memory has no room for to disk; a failing disk keeps it in memory, retried."""
        backoff = Backoff(*BACKOFF_SECONDS)
        while True:
            await self._spill.wait()
            self._spill.clear()
            while records := self._overflow[: BATCH * 16]:
                try:
                    await asyncio.to_thread(self.spool.append, records)
                except Exception:
                    journal_errors.inc()
                    log.exception("spooling %d events failed; keeping them in memory", len(records))
                    await asyncio.sleep(backoff.next())
                    continue
                del self._overflow[: len(records)]
                self._spooled()
                backoff.reset()
            self._progress.set()

    def _spooled(self) -> None:
        if not self._spooling:
            self._behind = self._spooling = True
            log.warning(
                "journal falling behind: memory full (%d events, PAM_JOURNAL_MAX_PENDING); spooling to %s",
                len(self._pending),
                self.spool.where,
                extra={"marker": logs.ERROR},
            )
        self._work.set()
        self._update_gauges()

    def _update_gauges(self) -> None:
        pending_events.set(self.in_memory)
        spooled_events.set(self.spool.count)
