"""The connection pool, waiting out a database that is down, and telling outages from bad data.

``DATABASE_URL`` may carry a password, so it is never logged: only ``where(url)`` is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from urllib.parse import urlparse

import asyncpg
from pam_shared import logs

from pam_persistence import migrations

log = logging.getLogger("pam.persistence.db")

CONNECT_TIMEOUT_SECONDS = 5.0
COMMAND_TIMEOUT_SECONDS = 30.0
FIRST_RETRY_SECONDS = 0.1
MAX_RETRY_SECONDS = 2.0

REFUSED_BY_DATABASE = (
    asyncpg.DataError,  # class 22: a value PostgreSQL refuses (a NUL byte in text, say)
    asyncpg.IntegrityConstraintViolationError,  # class 23
    asyncpg.ProgramLimitExceededError,  # class 54: a key too large for its index
    ValueError,  # asyncpg refused an argument before sending it (an integer out of range)
)
"""Errors the same rows will hit again however long we wait; anything else is worth a retry."""


def where(url: str) -> str:
    """``host:port/database``: enough to know which database, without credentials."""
    parsed = urlparse(url)
    return f"{parsed.hostname or 'localhost'}:{parsed.port or 5432}{parsed.path or '/'}"


def describe(exc: BaseException, url: str | None = None) -> str:
    """``Type: message``, with the URL's password blanked should a driver ever echo it."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    password = urlparse(url).password if url else None
    return text.replace(password, "***") if password else text


def retry_delays() -> Iterator[float]:
    """0.1 s, doubling, then every 2 s for as long as it takes."""
    delay = FIRST_RETRY_SECONDS
    while True:
        yield delay
        delay = min(delay * 2, MAX_RETRY_SECONDS)


async def open_pool(url: str, size: int) -> asyncpg.Pool:
    """Connect and migrate, retrying until the database answers (never crash-looping)."""
    delays = retry_delays()
    while True:
        pool = None
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=0,  # no background refilling (and its tracebacks) while the database is down
                max_size=size,
                timeout=CONNECT_TIMEOUT_SECONDS,
                command_timeout=COMMAND_TIMEOUT_SECONDS,
            )
            async with pool.acquire() as conn:
                await migrations.apply(conn)
            log.info("database %s ready", where(url), extra={"marker": logs.OK})
            return pool
        except Exception as exc:
            delay = next(delays)
            log.warning(
                "database %s not ready (%s); retrying in %.1f s",
                where(url),
                describe(exc, url),
                delay,
                extra={"marker": logs.RECONNECT},
            )
            if pool is not None:
                pool.terminate()
            await asyncio.sleep(delay)
