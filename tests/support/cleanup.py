"""Removing what a test made in JetStream, without failing a test that passed over it.

Streams and buckets outlive processes, so each test removes the ones its namespace made.  On a
three-node cluster on a loaded machine a deletion can time out (an election, a node rejoining):
it is asked again until a deadline, and what is still there then is named in a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import warnings

import nats
import nats.errors
import nats.js.errors

REQUEST_TIMEOUT = 10.0
RETRY_SECONDS = 0.5
CLEANUP_SECONDS = 60.0


async def delete_streams(nats_url: str, *streams: str, within: float = CLEANUP_SECONDS) -> list[str]:
    """Delete ``streams`` (one already gone counts as deleted); returns those left behind."""
    left = list(streams)
    deadline = time.monotonic() + within
    failure: Exception | None = None
    while left and time.monotonic() < deadline:
        try:
            await _delete(nats_url, left)
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            failure = exc
            await asyncio.sleep(RETRY_SECONDS)
    if left:
        warnings.warn(f"left behind on {nats_url} after {within} s: {left} ({failure!r})", stacklevel=2)
    return left


async def _delete(nats_url: str, left: list[str]) -> None:
    """Delete from the front of ``left``, taking each one off once it is gone."""
    nc = await nats.connect(nats_url.split(","), connect_timeout=2, max_reconnect_attempts=0)
    try:
        js = nc.jetstream(timeout=REQUEST_TIMEOUT)
        while left:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(left[0])
            left.pop(0)
    finally:
        await nc.close()
