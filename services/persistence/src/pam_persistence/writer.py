"""Events from JetStream into PostgreSQL: pull a batch, write it in one transaction, ack after commit.

Every instance pulls from the same durable consumer, so instances share the work, and
the events an instance dies holding go to the others once ``ACK_WAIT_SECONDS`` pass.

Acks are explicit, one per event, sent only after the batch's commit and back to back
(each is a plain publish into the client's buffer, flushed together; nothing waits for
the server): measured at about 2 µs per event.  ``AckPolicy.ALL`` (one ack per batch) is
not safe here: the consumer is shared, and acking sequence N acks every earlier message
pending anywhere, including a batch another instance holds and has not committed; if
that instance then dies, its events are never redelivered.  One consumer per instance
would make it safe but would stop instances sharing the stream.  An ack lost after a
commit only means a redelivery, which the write skips (``store``).

While PostgreSQL is unreachable a batch is held, not acked: the writer retries with
backoff and tells JetStream it is still working on those events (so they are not
handed to anyone else meanwhile); the events behind them wait in the stream, but for
the next batch the puller already holds, which goes to another instance after the ack
wait (and is skipped by whichever writes it second).
An event that does not decode, or that PostgreSQL refuses for its content, is parked
in ``dead_letters`` and acked, so it never blocks the ones behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import asyncpg
import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from pam_shared import jetstream, logs
from pam_shared.background import Tasks, survive
from pam_shared.events import Event, event_decoder
from pam_shared.subjects import Subjects

from pam_persistence import metrics, store
from pam_persistence.conversations import Activity
from pam_persistence.db import REFUSED_BY_DATABASE, describe, retry_delays
from pam_persistence.pull import Puller

log = logging.getLogger("pam.persistence.writer")

ACK_WAIT_SECONDS = 30.0
MAX_ACK_PENDING = 20_000
IDLE_FETCH_SECONDS = 0.5
"""How long one pull waits for a first event; also how long stopping can take when idle."""
ERROR_PAUSE_SECONDS = 1.0
VALID_TIMES = (0.0, 32_503_680_000.0)
"""``created_at`` must fall in 1970..3000 to become a timestamp."""


@dataclass(slots=True)
class Item:
    """One delivered event: decoded, or parked with the reason."""

    msg: Msg
    event: Event | None
    parked: store.Parked | None


class Writer:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        pool: asyncpg.Pool,
        names: Subjects,
        batch_size: int,
        flush_ms: float,
        activity: Activity,
        keeping: store.Keeping,
    ) -> None:
        self.nc = nc
        self.keeping = keeping
        self.js = js
        self.pool = pool
        self.names = names
        self.batch_size = batch_size
        self.flush_seconds = flush_ms / 1000
        self.activity = activity
        self._stopping = asyncio.Event()
        self._puller: Puller | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, tasks: Tasks, replicas: int) -> None:
        """Make (or bring to this configuration) the shared durable consumer, bind to it and start pulling."""
        durable, stream = self.names.persistence_consumer, self.names.events_stream
        config = ConsumerConfig(
            name=durable,
            durable_name=durable,
            filter_subject=self.names.events_wildcard,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT_SECONDS,
            max_ack_pending=MAX_ACK_PENDING,
            max_deliver=-1,
            num_replicas=replicas,
        )
        await jetstream.ensure_consumer(self.js, stream, config)
        self._puller = Puller(self.nc, stream, durable, IDLE_FETCH_SECONDS)
        await self._puller.start()
        self._task = tasks.start("persistence-writer", self._run())

    async def stop(self) -> None:
        """Finish the batch in hand (or hand it back to JetStream), then stop pulling."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        if self._puller is not None:
            await self._puller.close()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                batch = await self._next_batch()
                if batch:
                    await self._handle(batch)
            except Exception as exc:  # NATS reconnecting, say: whatever was not acked comes back
                log.warning("pulling events failed (%s)", describe(exc), extra={"marker": logs.ERROR})
                await self._stopped_within(ERROR_PAUSE_SECONDS)

    async def _next_batch(self) -> list[Msg]:
        """A full batch when events are waiting, whatever came within the flush interval otherwise."""
        assert self._puller is not None
        batch = await self._puller.next_batch(self.batch_size, self.flush_seconds)
        if batch:
            metrics.consumer_lag.set(batch[-1].metadata.num_pending or 0)
        return batch

    async def _handle(self, batch: list[Msg]) -> None:
        items = [_decode(msg) for msg in batch]
        started = time.monotonic()
        fenced = await self._store(items)
        if fenced is not None:
            for msg in batch:
                await msg.ack()
            _observe(items, time.monotonic() - started)
            await self._purge(fenced)
        else:
            for msg in batch:
                await msg.nak()

    async def _purge(self, erased: set[str]) -> None:
        """Events of erased users came after their erasure: out of the stream with them too."""
        for user_id in erased:
            with survive("persistence-writer", "purge"):
                await self.js.purge_stream(self.names.events_stream, subject=self.names.events_of(user_id))
        if erased:
            log.info("dropped late events of %d erased users", len(erased), extra={"marker": logs.OK})

    async def _store(self, items: list[Item]) -> set[str] | None:
        """Write ``items``, waiting out outages; the erased users whose events were dropped, or
        None only when told to stop first."""
        delays, held = retry_delays(), False
        while True:
            try:
                events = [i.event for i in items if i.event is not None]
                parked = [i.parked for i in items if i.parked is not None]
                fenced = await store.write(self.pool, events, parked, self.activity, self.keeping)
                if held:
                    log.info("database back: wrote %d held events", len(items), extra={"marker": logs.RECONNECT})
                return fenced
            except REFUSED_BY_DATABASE as exc:
                if len(items) > 1:
                    return await self._store_each(items)
                if items[0].event is not None:
                    items = [_park(items[0].msg, f"refused by PostgreSQL: {describe(exc)}")]
                    continue
                failure: Exception = exc
            except Exception as exc:
                failure = exc
            held, delay = True, next(delays)
            log.warning(
                "database unavailable (%s); holding %d events, retrying in %.1f s",
                describe(failure),
                len(items),
                delay,
                extra={"marker": logs.RECONNECT},
            )
            await _still_working(items)
            if await self._stopped_within(delay):
                return None

    async def _store_each(self, items: list[Item]) -> set[str] | None:
        """PostgreSQL refused a batch: write its events one at a time, parking those it refuses."""
        fenced: set[str] = set()
        for item in items:
            one = await self._store([item])
            if one is None:
                return None
            fenced |= one
        return fenced

    async def _stopped_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()


def _observe(items: list[Item], seconds: float) -> None:
    """Metrics for a committed batch, and a debug line per event carrying its chat's trace."""
    metrics.batch_size.observe(len(items))
    metrics.write_seconds.observe(seconds)
    for item in items:
        if item.event is None:
            continue
        kind = type(item.event).__struct_config__.tag
        metrics.events_written.labels(kind).inc()
        log.debug(
            "stored %s event %s",
            kind,
            item.event.event_id,
            extra={"trace_id": item.event.trace_id, "user_id": item.event.user_id, "session_id": item.event.session_id},
        )


def _decode(msg: Msg) -> Item:
    try:
        event = event_decoder.decode(msg.data)
    except msgspec.DecodeError as exc:
        return _park(msg, f"malformed: {exc}")
    if not VALID_TIMES[0] <= event.created_at < VALID_TIMES[1]:
        return _park(msg, f"created_at out of range: {event.created_at!r}")
    return Item(msg, event, None)


def _park(msg: Msg, error: str) -> Item:
    meta = msg.metadata
    log.error(
        "parking event %s (stream sequence %d) in dead_letters: %s",
        msg.subject,
        meta.sequence.stream,
        error,
        extra={"marker": logs.ERROR},
    )
    metrics.dead_lettered.inc()
    return Item(msg, None, store.Parked(meta.stream, meta.sequence.stream, msg.subject, msg.data, error))


async def _still_working(items: list[Item]) -> None:
    """Reset the ack timer of held events, so JetStream does not hand them to another instance."""
    with contextlib.suppress(Exception):  # NATS may be down too; then redelivery is harmless
        for item in items:
            await item.msg.in_progress()
