"""Reaching NATS from the command line: one quick attempt, and a clear line when it fails."""

from __future__ import annotations

import nats
import nats.errors
from nats.aio.client import Client
from pam_shared.bus import connect_options
from pam_shared.settings import NatsSettings

from pam_cli.failure import Failure

CONNECT_TIMEOUT_SECONDS = 3.0


async def connect(settings: NatsSettings) -> Client:
    """One quick attempt per server; the CLI reports NATS being down instead of retrying."""
    seen: list[Exception] = []

    async def remember(exc: Exception) -> None:
        seen.append(exc)

    try:
        return await nats.connect(
            **connect_options(settings),
            name="pam-cli",
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.1,
            error_cb=remember,
        )
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        reason = seen[-1] if seen else exc
        raise Failure(f"NATS unreachable at {_without_credentials(settings.url)} ({reason})") from None


def _without_credentials(url: str) -> str:
    return ",".join(part.split("@")[-1] for part in url.split(","))
