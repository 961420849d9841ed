"""The sessions one gateway holds, found by user (pushes) or all at once (health, drain)."""

from __future__ import annotations

from pam_shared.subjects import user_token

from pam_gateway.inbox import Inbox
from pam_gateway.session import Session


class Registry:
    def __init__(self) -> None:
        self._by_user: dict[str, set[Session]] = {}

    def add(self, session: Session) -> None:
        self._by_user.setdefault(user_token(session.identity.user_id), set()).add(session)

    def remove(self, session: Session) -> None:
        key = user_token(session.identity.user_id)
        sessions = self._by_user.get(key, set())
        sessions.discard(session)
        if not sessions:
            self._by_user.pop(key, None)

    def inboxes_of(self, user_key: str) -> list[Inbox]:
        """The inboxes of every socket of one user (``user_key`` as in their subject)."""
        return [session.inbox for session in self._by_user.get(user_key, ())]

    def sessions_of(self, user_id: str) -> list[Session]:
        return list(self._by_user.get(user_token(user_id), ()))

    @property
    def sessions(self) -> list[Session]:
        return [s for sessions in self._by_user.values() for s in sessions]
