"""NATS and PostgreSQL for a benchmark run: whatever answers at NATS_URL and
PAM_BENCH_POSTGRES_URL (or the usual local ports), else embedded ones started for the run.

The embedded servers are the ones ``make run`` uses (``pam_devstack.embedded``), so
``make bench`` works on a clean clone; the URLs reach every scenario through the environment.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pam_devstack.embedded import EmbeddedNats, EmbeddedPostgres, ServerProcess, reachable

DEFAULTS = {
    "NATS_URL": ("nats://127.0.0.1:4222", EmbeddedNats),
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
                if not reachable(url):
                    server = kind(Path(scratch) / kind.name)
                    server.start()
                    started.append(server)
                    url = server.url
                    notes.append(f"nothing answered for {variable}: started an embedded {kind.name} at {url}")
                os.environ[variable] = url
            yield notes
        finally:
            for server in reversed(started):
                server.stop()
