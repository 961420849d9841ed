"""Per-user token budgets per UTC day and month, shared cluster-wide through a JetStream key-value bucket.

Orchestrators add each answer's tokens afterwards by compare-and-set on the entry's revision,
so any number of them never lose an update.  Keys put the user first
(``<user_token>.day.<YYYYMMDD>``, ``<user_token>.month.<YYYYMM>``) so one user's entries go
by prefix.  A debit that takes a counter to or over its limit first writes a *spent marker*
(``<user_token>.spent.<period>.<stamp>``, the count it is about to write): gateways watch the
markers alone (``pam_gateway.spent``), so admitting a chat reads nothing, and a counter is never
seen at its limit before its marker.  ``GET /api/v1/usage`` reads the counters themselves, from
the bucket's stream leader.  If the bucket cannot be reached a debit is skipped and says so once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from pam_shared import jetstream
from pam_shared.settings import BudgetSettings
from pam_shared.subjects import user_token

log = logging.getLogger("pam.budget")

Period = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")
TTL_SECONDS = 33 * 86400
"""A month's entry (and marker) outlives its month (the bucket's max age counts from the last write)."""
MARKERS = "*.spent.>"
"""The keys of every user's spent markers, for a watcher (``pam_gateway.spent``)."""
TIMEOUT_SECONDS = 1.0
"""How long ``GET /api/v1/usage`` waits (times 5) for the counters, and a debit for each write."""
DEBIT_ATTEMPTS = 100
BACKOFF_SECONDS = 0.002
"""After a lost compare-and-set, wait up to this times the attempts so far (jittered): writers spread out."""
CHARS_PER_TOKEN = 4
"""The estimate for text whose tokens the provider did not report: about 4 characters a token."""


class PeriodUse(msgspec.Struct):
    """One period's spend, as ``GET /api/v1/usage`` shows it; ``limit`` None is unlimited."""

    used: int
    limit: int | None
    resets_at: str


class Usage(msgspec.Struct):
    """A user's spend this UTC day and this UTC month (``GET /api/v1/usage``)."""

    day: PeriodUse
    month: PeriodUse


usage_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Spent:
    """A period whose budget is used up, and when it starts again."""

    period: Period
    resets_at: datetime
    retry_after_seconds: int

    @classmethod
    def until_reset(cls, period: Period, now: datetime) -> Spent:
        reset = resets_at(period, now)
        return cls(period, reset, max(1, math.ceil((reset - now).total_seconds())))

    @property
    def details(self) -> dict[str, object]:
        return {
            "period": self.period,
            "resets_at": iso(self.resets_at),
            "retry_after_seconds": self.retry_after_seconds,
        }


def stamp(period: Period, at: datetime) -> str:
    """The UTC day (``YYYYMMDD``) or month (``YYYYMM``) ``at`` falls in."""
    return at.astimezone(UTC).strftime("%Y%m%d" if period == "day" else "%Y%m")


def key(user_id: str, period: Period, at: datetime) -> str:
    """The entry of ``user_id``'s spend in the UTC day or month ``at`` falls in."""
    return f"{user_token(user_id)}.{period}.{stamp(period, at)}"


def marker_key(user_id: str, period: Period, at: datetime) -> str:
    """The marker saying ``user_id`` reached a limit in that day or month (``MARKERS`` matches it)."""
    return f"{user_token(user_id)}.spent.{period}.{stamp(period, at)}"


def bucket_config(bucket: str, replicas: int) -> KeyValueConfig:
    return KeyValueConfig(bucket=bucket, ttl=TTL_SECONDS, history=1, replicas=replicas, direct=False)


def resets_at(period: Period, at: datetime) -> datetime:
    """The start of the next UTC day or month after ``at``."""
    at = at.astimezone(UTC)
    if period == "day":
        return datetime(at.year, at.month, at.day, tzinfo=UTC) + timedelta(days=1)
    return datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def estimate_tokens(text: str) -> int:
    """Tokens in ``text`` by the 4-characters rule, rounded up (what was streamed costs at least that)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


class Budgets:
    def __init__(self, js: JetStreamContext, bucket: str, settings: BudgetSettings) -> None:
        self.js = js
        self.bucket = bucket
        self.limits: dict[Period, int] = {"day": settings.tokens_per_day, "month": settings.tokens_per_month}
        self.enabled = settings.enabled
        self._kv: KeyValue | None = None
        self._failing = False

    async def start(self, replicas: int = 1) -> None:
        self._kv = await jetstream.ensure_bucket(self.js, bucket_config(self.bucket, replicas))

    async def usage(self, user_id: str, now: datetime | None = None) -> Usage:
        """What ``user_id`` spent this day and month, against the limits; raises on NATS trouble."""
        now = now or datetime.now(UTC)
        used = await asyncio.wait_for(self._read_all(user_id, PERIODS, now), TIMEOUT_SECONDS * 5)
        day, month = (
            PeriodUse(n, self.limits[p] or None, iso(resets_at(p, now))) for p, n in zip(PERIODS, used, strict=True)
        )
        return Usage(day, month)

    async def debit(self, user_id: str, tokens: int, now: datetime | None = None) -> None:
        """Add ``tokens`` to the user's day and month (nothing while no budget is set); never raises."""
        if not self.enabled or tokens <= 0:
            return
        now = now or datetime.now(UTC)
        try:
            for period in PERIODS:
                await asyncio.wait_for(self._add(user_id, period, now, tokens), TIMEOUT_SECONDS * 5)
        except Exception as exc:
            self._failed("budget not debited (%d tokens): %r", tokens, exc)
            return
        self._working()

    async def _read_all(self, user_id: str, periods: tuple[Period, ...], now: datetime) -> list[int]:
        return list(await asyncio.gather(*(self._read(key(user_id, p, now)) for p in periods)))

    async def _read(self, name: str) -> int:
        assert self._kv is not None
        try:
            entry = await self._kv.get(name)
        except KeyNotFoundError:
            return 0
        return int(entry.value or b"0")

    async def _add(self, user_id: str, period: Period, now: datetime, tokens: int) -> None:
        """Compare-and-set: a concurrent debit makes us read again and add to that."""
        assert self._kv is not None
        name = key(user_id, period, now)
        for attempt in range(DEBIT_ATTEMPTS):
            if attempt:
                await asyncio.sleep(random.uniform(0, BACKOFF_SECONDS * attempt))
            try:
                entry = await self._kv.get(name)
            except KeyNotFoundError:
                entry = None
            used = (int(entry.value or b"0") if entry else 0) + tokens
            await self._mark(user_id, period, now, used)
            try:
                if entry is None:
                    await self._kv.create(name, str(used).encode())
                else:
                    await self._kv.update(name, str(used).encode(), last=entry.revision)
                return
            except KeyWrongLastSequenceError:
                continue
        raise RuntimeError(f"{name} changed {DEBIT_ATTEMPTS} times while being debited")

    async def _mark(self, user_id: str, period: Period, now: datetime, used: int) -> None:
        """Before a counter reaches its limit, its marker (what gateways watch) says so.  Written
        on every debit at or over the limit, so one lost write is mended by the next answer; if the
        counter's write then fails for good, the marker still tells what was really spent."""
        assert self._kv is not None
        if self.limits[period] and used >= self.limits[period]:
            await self._kv.put(marker_key(user_id, period, now), str(used).encode())

    def _failed(self, text: str, *args: object) -> None:
        if not self._failing:
            log.warning(text, *args)
        self._failing = True

    def _working(self) -> None:
        if self._failing:
            log.info("budget bucket reachable again")
        self._failing = False
