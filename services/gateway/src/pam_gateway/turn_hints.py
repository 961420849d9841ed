"""Where each user's conversation turn was last given up, as this gateway heard it.

An answer's end carries the revision of its hold, the turn entry it gave up without a write
(``Pam-Turn``, see ``pam_orchestrator.holds``; an older orchestrator's free entry); the user's
next chat through this gateway hands it back (``ChatRequest.turn``), so the orchestrator
takes the turn in one compare-and-set instead of a read, a question and a write.  It is only
a hint: a stale one (the user chatted through another gateway meanwhile) costs those again.
"""

from __future__ import annotations

MAX_USERS = 10_000
"""Users remembered; past that the one heard of longest ago is forgotten (its next chat reads)."""


class TurnHints:
    def __init__(self, limit: int = MAX_USERS) -> None:
        self.limit = limit
        self._by_user: dict[str, int] = {}

    def learn(self, user_id: str, revision: int) -> None:
        hints = self._by_user
        hints.pop(user_id, None)
        if len(hints) >= self.limit:
            del hints[next(iter(hints))]
        hints[user_id] = revision

    def take(self, user_id: str) -> int | None:
        """The hint for the user's next chat; good once (taking the turn changes its revision)."""
        return self._by_user.pop(user_id, None)
