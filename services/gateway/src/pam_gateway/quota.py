"""The per-user message limit, shared by every gateway through a JetStream key-value bucket.

Each gateway leases a few messages at a time from the user's counter for the current
minute (compare-and-set, so concurrent gateways never lose an update) and spends the
lease locally, so the limit holds exactly across gateways while most messages need no
NATS round trip.  Leases left unspent when the minute ends count as used.  If the
bucket cannot be reached the limiter fails open: chat keeps working.
"""

from __future__ import annotations

import contextlib
import logging
import time

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pam_shared import jetstream
from pam_shared.subjects import user_token

log = logging.getLogger("pam.gateway.quota")

WINDOW_SECONDS = 60
LEASES_PER_WINDOW = 20
"""A lease is 1/20 of the limit: few round trips, little left unspent at a window's end."""


class UserQuota:
    def __init__(self, js: JetStreamContext, bucket: str, per_minute: int) -> None:
        self.js = js
        self.bucket = bucket
        self.limit = per_minute
        self.lease_size = max(1, per_minute // LEASES_PER_WINDOW)
        self._kv: KeyValue | None = None
        self._window = 0
        self._leases: dict[str, int] = {}

    async def start(self, replicas: int = 1) -> None:
        config = KeyValueConfig(bucket=self.bucket, ttl=WINDOW_SECONDS * 2, history=1, replicas=replicas)
        self._kv = await jetstream.ensure_bucket(self.js, config)

    async def stop(self) -> None:
        self._leases.clear()

    async def take(self, user_id: str) -> float:
        """Spend one message; returns 0 when allowed, else seconds until the window resets."""
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        if window != self._window:
            self._window, self._leases = window, {}
        key = user_token(user_id)
        if self._leases.get(key, 0) <= 0:
            self._leases[key] = await self._lease(f"{key}.{window}")
        if self._leases[key] <= 0:
            return (window + 1) * WINDOW_SECONDS - now
        self._leases[key] -= 1
        return 0.0

    async def _lease(self, key: str) -> int:
        try:
            return await self._grant(key)
        except Exception as exc:  # NATS trouble must not stop people chatting
            log.warning("rate bucket unavailable, allowing: %s", exc)
            return self.lease_size

    async def _grant(self, key: str) -> int:
        """Move up to ``lease_size`` messages from the shared counter to us; 0 when spent."""
        assert self._kv is not None
        while True:
            try:
                entry = await self._kv.get(key)
            except KeyNotFoundError:
                grant = min(self.lease_size, self.limit)
                with contextlib.suppress(KeyWrongLastSequenceError):
                    await self._kv.create(key, str(grant).encode())
                    return grant
                continue
            used = int(entry.value or b"0")
            grant = min(self.lease_size, self.limit - used)
            if grant <= 0:
                return 0
            try:
                await self._kv.update(key, str(used + grant).encode(), last=entry.revision)
                return grant
            except KeyWrongLastSequenceError:
                continue
