"""The public keys Supabase signs access tokens with, fetched from its JWKS address.

Fetching happens in a worker thread (urllib blocks), never on the event loop. Keys are kept
for ``cache_seconds``; a token naming a key we do not have (Supabase rotated its keys) makes
us fetch again, but at most once every ``refresh_seconds``, so tokens with made-up ``kid``
values cannot turn the gateway into a flood of requests to Supabase.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from collections.abc import Awaitable, Callable

from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKSetError

log = logging.getLogger("pam.auth.jwks")

SIGNING_ALGORITHMS = ("ES256", "RS256")
"""The asymmetric algorithms Supabase signs with; keys of any other kind are ignored."""
FETCH_TIMEOUT_SECONDS = 5.0
MAX_JWKS_BYTES = 1_048_576

Fetch = Callable[[str], Awaitable[bytes]]


class JwksUnavailable(Exception):
    """The key set could not be fetched and no earlier copy is kept."""


async def fetch_url(url: str) -> bytes:
    """GET ``url`` in a thread, so a slow Supabase holds no socket of the gateway."""
    return await asyncio.to_thread(_get, url)


def _get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:
        body: bytes = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError(f"JWKS larger than {MAX_JWKS_BYTES} bytes")
    return body


class JwksKeys:
    """One JWKS address's keys by ``kid``, fetched when needed at a bounded rate."""

    def __init__(self, url: str, refresh_seconds: float, cache_seconds: float, fetch: Fetch = fetch_url) -> None:
        self.url = url
        self.refresh_seconds = refresh_seconds
        self.cache_seconds = cache_seconds
        self.fetch = fetch
        self.fetches = 0
        self._keys: dict[str, PyJWK] | None = None
        self._fetched_at = -float("inf")  # time.monotonic() of the last attempt, good or not
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> PyJWK | None:
        """The key named ``kid``, or None when the (possibly refetched) key set has none."""
        if self._stale() or kid not in (self._keys or {}):
            async with self._lock:  # concurrent misses wait for one fetch
                if self._stale() or (kid not in (self._keys or {}) and self._may_fetch()):
                    await self._refresh()
        if self._keys is None:
            raise JwksUnavailable(self.url)
        return self._keys.get(kid)

    def _may_fetch(self) -> bool:
        return time.monotonic() - self._fetched_at >= self.refresh_seconds

    def _stale(self) -> bool:
        return time.monotonic() - self._fetched_at >= self.cache_seconds

    async def _refresh(self) -> None:
        """Fetch the set again; a failed fetch keeps the keys we had."""
        self._fetched_at = time.monotonic()
        self.fetches += 1
        try:
            self._keys = _parse(await self.fetch(self.url))
        except Exception as exc:  # network, HTTP status, bad JSON: all mean "not now"
            log.warning("could not fetch the JWKS at %s: %s", self.url, exc)


def _parse(body: bytes) -> dict[str, PyJWK]:
    """Usable signing keys by ``kid``; an empty set is a valid answer (no asymmetric keys yet)."""
    document = json.loads(body)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set")
    try:
        keys = PyJWKSet.from_dict(document)
    except PyJWKSetError:
        return {}
    return {k.key_id: k for k in keys if k.key_id and k.algorithm_name in SIGNING_ALGORITHMS}
