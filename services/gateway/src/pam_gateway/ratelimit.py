"""Local limits: a token bucket per socket, connection attempts per IP, sockets per user.

These protect one gateway process.  The per-user message limit that must hold across
gateways lives in ``quota.py``.
"""

from __future__ import annotations

import time
from collections import Counter


class TokenBucket:
    """``burst`` messages at once, refilled at ``rate`` per second."""

    __slots__ = ("tokens", "updated", "burst", "rate")

    def __init__(self, burst: float, rate: float) -> None:
        self.burst, self.rate = burst, rate
        self.tokens = burst
        self.updated = time.monotonic()

    def take(self) -> float:
        """Spend one token; returns 0 when allowed, else the seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class AttemptsPerMinute:
    """Connection attempts per client IP in fixed one-minute windows."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._window = 0
        self._counts: Counter[str] = Counter()

    def allow(self, ip: str) -> bool:
        window = int(time.time() // 60)
        if window != self._window:
            self._window, self._counts = window, Counter()
        self._counts[ip] += 1
        return self._counts[ip] <= self.limit


class SocketsPerUser:
    """Open sockets per user on this gateway."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def acquire(self, user_id: str) -> bool:
        if self._open[user_id] >= self.limit:
            return False
        self._open[user_id] += 1
        return True

    def release(self, user_id: str) -> None:
        self._open[user_id] -= 1
        if self._open[user_id] <= 0:
            del self._open[user_id]
