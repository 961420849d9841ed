"""Connecting to NATS the same way in every service, and gathering replies from many peers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from prometheus_client import Counter

from pam_shared import logs

log = logging.getLogger("pam.bus")


reconnects = Counter("pam_nats_reconnects_total", "Reconnections to NATS")


async def connect(url: str, name: str, nc: Client | None = None) -> Client:
    """Connect with unlimited reconnects; every lifecycle event is logged with its marker.

    ``nc`` is a client made beforehand (``Client()``), so the parts that use it can be
    built before the connection exists."""

    async def disconnected() -> None:
        log.warning("NATS disconnected", extra={"marker": logs.CONNECTION})

    async def reconnected() -> None:
        reconnects.inc()
        log.info("NATS reconnected", extra={"marker": logs.RECONNECT})

    async def error(exc: Exception) -> None:
        log.warning("NATS error: %s", exc, extra={"marker": logs.ERROR})

    nc = nc or Client()
    await nc.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,  # type: ignore[arg-type]  # nats-py annotates int; it sleeps any float
        connect_timeout=3,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
    )
    log.info("connected to NATS", extra={"marker": logs.OK})
    return nc


async def gather_replies(nc: Client, subject: str, window: float, payload: bytes = b"") -> list[Msg]:
    """Publish once and keep every reply that arrives within ``window`` seconds.

    ``nc.request`` keeps only the first reply; discovery (``$SRV.PING`` and friends)
    needs all of them.
    """
    inbox = nc.new_inbox()
    replies: list[Msg] = []
    sub = await nc.subscribe(inbox, cb=_append_to(replies))
    try:
        await nc.publish(subject, payload, reply=inbox)
        await asyncio.sleep(window)
    finally:
        await sub.unsubscribe()
    return [m for m in replies if not (m.headers and m.headers.get("Status") == "503")]


def _append_to(replies: list[Msg]) -> Callable[[Msg], Awaitable[None]]:
    async def append(msg: Msg) -> None:
        replies.append(msg)

    return append
