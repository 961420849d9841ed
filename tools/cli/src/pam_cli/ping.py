"""Open a socket as the frontend does and time it: the seed's "Test WebSocket Endpoint".

Reports the connect time and the round trip of each ping → pong.
"""

from __future__ import annotations

import argparse
import time

from pam_shared.logs import CONNECTION, INCOMING, OK, OUTGOING
from pam_shared.protocol import Ping, Pong, now_iso

from pam_cli import options
from pam_cli.console import say
from pam_cli.session import Session, open_session

PONG_TIMEOUT_SECONDS = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_url(parser)
    options.add_identity(parser)
    parser.add_argument("--count", type=options.positive_int, default=1, help="pings to send (default %(default)s)")


async def run(args: argparse.Namespace) -> int:
    async with open_session(args.url, args.token, args.user) as session:
        say(CONNECTION, session.describe())
        trips = [await round_trip(session) for _ in range(args.count)]
    say(OK, f"round trip {summary(trips)}")
    return 0


def summary(trips: list[float]) -> str:
    average = sum(trips) / len(trips)
    if len(trips) == 1:
        return f"{average:.1f} ms"
    return f"min/avg/max {min(trips):.1f}/{average:.1f}/{max(trips):.1f} ms over {len(trips)} pings"


async def round_trip(session: Session) -> float:
    """Milliseconds from sending a ``ping`` to its ``pong``; other frames are shown and skipped."""
    started = time.perf_counter()
    await session.send(Ping(timestamp=now_iso()))
    say(OUTGOING, "ping")
    while not isinstance(frame := await session.receive(PONG_TIMEOUT_SECONDS), Pong):
        say(INCOMING, f"{type(frame).__name__} (not a pong)")
    elapsed = (time.perf_counter() - started) * 1000
    say(INCOMING, f"pong in {elapsed:.1f} ms (server time {frame.timestamp})")
    return elapsed
