"""A circuit breaker per model endpoint, so a dead provider stops costing every chat a timeout.

Closed, it lets every chat through and counts consecutive failures; at ``failures`` in a row
it opens and lets none through for ``cooldown`` seconds; then it is half-open: one chat
probes the endpoint, and its success closes the breaker, its failure opens it again.  A
provider's ``Retry-After`` keeps chats away for that long whatever the state.  A trial that
ends with no verdict (the user stopped the answer) leaves the count as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]
MAX_RETRY_AFTER_SECONDS = 600.0
"""A provider asking us to wait longer than this is believed for this long only."""


class Breaker:
    def __init__(self, failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = failures
        self.cooldown = cooldown
        self.clock = clock
        self.failures = 0
        self._opened_at: float | None = None
        self._blocked_until = 0.0
        self._probing = False

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        return "open" if self.clock() < self._opened_at + self.cooldown else "half_open"

    @property
    def retry_in(self) -> float:
        """Seconds until a chat may be sent here again (0: now)."""
        now = self.clock()
        reopens = self._opened_at + self.cooldown if self._opened_at is not None else 0.0
        return max(0.0, self._blocked_until - now, reopens - now)

    def take(self) -> bool:
        """May a chat try this endpoint now?  In half-open state only one at a time does."""
        if self.clock() < self._blocked_until:
            return False
        state = self.state
        if state == "half_open":
            if self._probing:
                return False
            self._probing = True
        return state != "open"

    def succeeded(self) -> None:
        self.failures, self._opened_at, self._probing = 0, None, False

    def failed(self, retry_after: float | None = None) -> None:
        now = self.clock()
        if retry_after is not None:
            self._blocked_until = max(self._blocked_until, now + min(retry_after, MAX_RETRY_AFTER_SECONDS))
        self.failures += 1
        if self._probing or self.failures >= self.threshold:
            self._opened_at = now
        self._probing = False

    def released(self) -> None:
        """A trial ended without saying whether the endpoint works."""
        self._probing = False
