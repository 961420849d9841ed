"""Every user's privacy settings, as the gateway needs them for each chat.

Persistence mirrors each change into a key-value bucket keyed by user token
(``pam_shared.privacy``); the gateway watches that bucket and holds its entries in memory,
so a chat costs a dict lookup, not a database round trip, and a change reaches every
gateway within milliseconds of being made: before its next chat.
"""

from __future__ import annotations

import time

from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pam_shared import jetstream
from pam_shared.background import Tasks, survive
from pam_shared.privacy import Privacy, bucket_config, privacy_decoder
from pam_shared.subjects import Subjects, user_token

ERASING_AT_MOST_SECONDS = 120.0
"""A user's chats are refused this long at most while they are erased (persistence gives up on an
erasure after a minute; one that dies midway must not lock the user out)."""


class PrivacyBook:
    """Every user's settings as the mirror bucket has them, kept current by one watcher."""

    def __init__(self, js: JetStreamContext, names: Subjects, default: Privacy) -> None:
        self.js, self.names, self.default = js, names, default
        self._known: dict[str, Privacy] = {}
        self._erasing: dict[str, float] = {}
        """Users being erased, until when at the latest (should the erasure's end never come)."""
        self._kv: KeyValue | None = None
        self._watcher: KeyValue.KeyWatcher | None = None

    async def start(self, tasks: Tasks, replicas: int) -> None:
        """Read every entry, then follow changes; returns once the book is complete."""
        self._kv = await jetstream.ensure_bucket(self.js, bucket_config(self.names, replicas))
        self._watcher = await self._kv.watchall()
        async for entry in self._watcher:
            if entry is None:
                break
            self._take(entry)
        tasks.start("privacy-book", self._follow())

    def of(self, user_id: str) -> Privacy:
        return self._known.get(user_token(user_id), self.default)

    def learn(self, user_id: str, privacy: Privacy) -> None:
        """A change this process made: in force here at once, before the watcher brings it."""
        self._known[user_token(user_id)] = privacy

    def erasing(self, user_id: str) -> bool:
        """Whether the user is being erased: their chats and sockets are refused meanwhile."""
        until = self._erasing.get(user_token(user_id))
        return until is not None and time.monotonic() < until

    def erase(self, user_id: str, done: bool) -> None:
        """A user's erasure begins (``done`` False) or has ended: either way they have no entry
        (the bucket's is purged, which a watcher is not told)."""
        token = user_token(user_id)
        self._known.pop(token, None)
        if done:
            self._erasing.pop(token, None)
        else:
            self._erasing[token] = time.monotonic() + ERASING_AT_MOST_SECONDS

    async def close(self) -> None:
        if self._watcher is not None:
            await self._watcher.stop()  # type: ignore[no-untyped-call]

    async def _follow(self) -> None:
        assert self._watcher is not None
        async for entry in self._watcher:
            if entry is not None:
                with survive("privacy-book", "entry"):
                    self._take(entry)

    def _take(self, entry: KeyValue.Entry) -> None:
        if entry.operation in (KV_DEL, KV_PURGE):
            self._known.pop(entry.key, None)
        else:
            self._known[entry.key] = privacy_decoder.decode(entry.value or b"{}")
