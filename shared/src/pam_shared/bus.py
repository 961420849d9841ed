"""Connecting to NATS the same way in every service, asking one peer, and gathering replies from many."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from prometheus_client import Counter

from pam_shared import logs
from pam_shared.settings import NatsSettings

log = logging.getLogger("pam.bus")


reconnects = Counter("pam_nats_reconnects_total", "Reconnections to NATS")


RECONNECT_WAIT_SECONDS = 0.5
RESPONDER_WAIT_SECONDS = 0.1
"""Before asking again after "no responders": time for a responder whose server went away to
reach another one (trying a server it has not tried lately is immediate)."""


def connect_options(nats: NatsSettings) -> dict[str, Any]:
    """What nats-py needs to reach ``nats``'s servers (every one listed; the ones a cluster
    announces are added as it announces them) and to sign in."""
    options: dict[str, Any] = {"servers": [_tls_scheme(server) for server in nats.servers]}
    if nats.creds_file:
        options["user_credentials"] = nats.creds_file
    if nats.user:
        options.update(user=nats.user, password=nats.password)
    if nats.token:
        options["token"] = nats.token
    if nats.ca_file or nats.cert_file:
        options["tls"] = tls_context(nats)
    return options


def tls_context(nats: NatsSettings) -> ssl.SSLContext:
    """Trust ``NATS_CA_FILE`` (else the system's CAs); present ``NATS_CERT_FILE`` when set (mTLS)."""
    context = ssl.create_default_context(cafile=nats.ca_file)
    if nats.cert_file:
        context.load_cert_chain(nats.cert_file, nats.key_file)
    return context


def _tls_scheme(server: str) -> str:
    """nats-py knows ``tls://``; ``nats+tls://`` is the same thing in other clients' spelling."""
    return "tls://" + server.removeprefix("nats+tls://") if server.startswith("nats+tls://") else server


async def connect(nats: NatsSettings, name: str, nc: Client | None = None) -> Client:
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
        **connect_options(nats),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=RECONNECT_WAIT_SECONDS,  # type: ignore[arg-type]  # nats-py annotates int; it sleeps any float
        connect_timeout=3,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
    )
    log.info("connected to NATS", extra={"marker": logs.OK})
    return nc


async def request(nc: Client, subject: str, payload: bytes, timeout: float) -> Msg:
    """``nc.request`` that rides through a server going away: asked once more when no one
    answered because a responder was moving to another server ("no responders"), or because
    our own connection moved while we waited (the request or its reply went down with it)."""
    reconnects, started = nc.stats["reconnects"], time.monotonic()
    try:
        return await nc.request(subject, payload, timeout)
    except NoRespondersError:
        left = timeout - (time.monotonic() - started)
        if left <= RESPONDER_WAIT_SECONDS:
            raise
        await asyncio.sleep(RESPONDER_WAIT_SECONDS)
        return await nc.request(subject, payload, left - RESPONDER_WAIT_SECONDS)
    except NatsTimeout:
        if nc.stats["reconnects"] == reconnects and not nc.is_reconnecting:
            raise
        return await nc.request(subject, payload, timeout)


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


async def gather_until(nc: Client, subject: str, payload: bytes, expected: set[str], timeout: float) -> set[str]:
    """Publish once and collect replies (each one a responder's name) until every ``expected``
    name has answered, or ``timeout`` passes; the names that answered."""
    inbox, answered = nc.new_inbox(), set[str]()
    complete = asyncio.Event()

    async def collect(msg: Msg) -> None:
        answered.add(msg.data.decode(errors="replace"))
        if expected <= answered:
            complete.set()

    sub = await nc.subscribe(inbox, cb=collect)
    try:
        await nc.publish(subject, payload, reply=inbox)
        if not expected:
            await nc.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(complete.wait(), timeout if expected else 0)
    finally:
        await sub.unsubscribe()
    return answered


def _append_to(replies: list[Msg]) -> Callable[[Msg], Awaitable[None]]:
    async def append(msg: Msg) -> None:
        replies.append(msg)

    return append
