"""One benchmark at a time on this machine: two runs at once would measure each other.

The first benchmark process takes an exclusive lock on ``bench/results/.lock`` for its
lifetime; processes it starts inherit ``BENCH_LOCK_HELD`` and do not ask again.  A
second run waits for the first (saying so), up to WAIT_SECONDS.
"""

from __future__ import annotations

import fcntl
import os
import time

from bench.results import RESULTS

HELD = "BENCH_LOCK_HELD"
WAIT_SECONDS = 1800.0
_held: list[int] = []


def hold() -> None:
    if os.environ.get(HELD) or _held:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    fd = os.open(RESULTS / ".lock", os.O_CREAT | os.O_RDWR)
    deadline = time.monotonic() + WAIT_SECONDS
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise SystemExit("another benchmark still holds bench/results/.lock") from None
            if not told:
                print("another benchmark is running on this machine; waiting for it", flush=True)
                told = True
            time.sleep(1)
    _held.append(fd)  # open for the life of the process: the lock goes when it exits
    os.environ[HELD] = "1"
