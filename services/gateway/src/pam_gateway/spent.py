"""Which users have used up a token budget, as the gateway needs it for each chat.

Reading a user's two counters per chat cost a fifth of the chat path's throughput.  Instead the
orchestrator whose debit takes a counter to its limit also writes a spent marker
(``pam_shared.budget``); each gateway watches the markers alone and holds them in memory, so
admitting a chat is a dict lookup.  A marker is compared with this gateway's own limit (a raised
limit lets the user in again) and counts only in its own UTC day or month.  If the watcher stops,
the markers held go on refusing and everyone else is let through (readiness goes down, said once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pam_shared import jetstream
from pam_shared.background import Tasks, survive
from pam_shared.budget import MARKERS, PERIODS, Period, Spent, bucket_config, stamp
from pam_shared.settings import BudgetSettings
from pam_shared.subjects import user_token

log = logging.getLogger("pam.gateway.spent")

Marker = tuple[str, int]
"""A period's stamp and the tokens used when its limit was reached."""
_PERIODS: dict[str, Period] = {period: period for period in PERIODS}


class SpentBook:
    """Every user's spent markers as the budget bucket has them, kept current by one watcher."""

    def __init__(self, js: JetStreamContext, bucket: str, settings: BudgetSettings) -> None:
        self.js, self.bucket = js, bucket
        self.limits: dict[Period, int] = {"day": settings.tokens_per_day, "month": settings.tokens_per_month}
        self.enabled = settings.enabled
        self._known: dict[str, dict[Period, Marker]] = {}
        self._watcher: KeyValue.KeyWatcher | None = None
        self._closing = False
        self.taken = asyncio.Event()
        """Set whenever a marker is taken in: for whoever waits for one (tests, a debugger)."""

    async def start(self, tasks: Tasks, replicas: int) -> None:
        """Watch the markers (no budget set: nothing to watch); returns once the book is complete."""
        if not self.enabled:
            return
        kv = await jetstream.ensure_bucket(self.js, bucket_config(self.bucket, replicas))
        self._watcher = await kv.watch(MARKERS)
        await self.load(self._watcher, tasks)

    async def load(self, entries: AsyncIterator[KeyValue.Entry | None], tasks: Tasks) -> None:
        """Take every marker up to the watcher's "caught up" None, then follow the rest in a task."""
        async for entry in entries:
            if entry is None:
                break
            self._take_one(entry)
        tasks.start("budget-spent", self._follow(entries))

    def spent(self, user_id: str, now: datetime | None = None) -> Spent | None:
        """The period whose limit ``user_id`` has used up, if any (the one resetting last)."""
        token = user_token(user_id)
        markers = self._known.get(token)
        if markers is None:
            return None
        now = now or datetime.now(UTC)
        for period in [p for p, (marked, _) in markers.items() if marked < stamp(p, now)]:
            del markers[period]  # a past day or month: gone for good
        if not markers:
            del self._known[token]
        over = [p for p in PERIODS if p in markers and self._over(markers[p], p, now)]
        return Spent.until_reset(over[-1], now) if over else None

    def forget(self, user_id: str) -> None:
        """A user being erased: their markers are purged from the bucket, which a watcher is not told."""
        self._known.pop(user_token(user_id), None)

    async def close(self) -> None:
        self._closing = True
        if self._watcher is not None:
            await self._watcher.stop()  # type: ignore[no-untyped-call]

    def _over(self, marker: Marker, period: Period, now: datetime) -> bool:
        limit = self.limits[period]
        return bool(limit) and marker[1] >= limit and marker[0] == stamp(period, now)

    async def _follow(self, entries: AsyncIterator[KeyValue.Entry | None]) -> None:
        try:
            async for entry in entries:
                if entry is not None:
                    self._take_one(entry)
        finally:
            task = asyncio.current_task()
            if not self._closing and not (task and task.cancelling()):  # not a shutdown: a broken book
                log.warning("budget markers no longer followed: only users already known spent are refused")

    def _take_one(self, entry: KeyValue.Entry) -> None:
        with survive("budget-spent", "marker"):
            self._take(entry)
        self.taken.set()

    def _take(self, entry: KeyValue.Entry) -> None:
        token, _, name, marked = entry.key.split(".")
        period = _PERIODS[name]
        markers = self._known.setdefault(token, {})
        held = markers.get(period)
        if entry.operation in (KV_DEL, KV_PURGE):
            if held is not None and held[0] == marked:
                del markers[period]
        elif held is None or held[0] <= marked:  # not a marker of an earlier period written late
            markers[period] = (marked, int(entry.value or b""))
