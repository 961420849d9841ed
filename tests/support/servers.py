"""Where the tests find NATS and PostgreSQL.

The server the environment names (``NATS_URL``, ``PAM_TEST_POSTGRES_URL``), or the usual
local port, is used whenever something answers there, so CI machines keep using the
servers they run.  When nothing answers, the same embedded servers ``make run`` uses are
started, once per test session, in a scratch folder, and stopped when the session ends.
``PAM_TEST_SERVERS=embedded`` asks for the embedded servers even when local ones run
(the URL variables stay real URLs, since service processes inherit them).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from pam_devstack.embedded import EmbeddedNats, EmbeddedPostgres, ServerProcess, reachable

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
FORCE = "PAM_TEST_SERVERS"
EMBEDDED = "embedded"

_embedded: dict[type[ServerProcess], ServerProcess] = {}


def nats_url() -> str:
    return _answering("NATS_URL", DEFAULT_NATS_URL, EmbeddedNats)


def postgres_admin_url() -> str:
    """A URL of a database we may CREATE/DROP test databases from."""
    return _answering("PAM_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL, EmbeddedPostgres)


def _answering(variable: str, default: str, kind: type[ServerProcess]) -> str:
    url = os.environ.get(variable) or default
    forced = os.environ.get(FORCE) == EMBEDDED
    if not forced and reachable(url):
        return url
    server = _started(kind)
    if not forced:
        warnings.warn(
            f"nothing answers at {url} ({variable}); using an embedded {server.name} at {server.url}", stacklevel=3
        )
    return server.url


def _started(kind: type[ServerProcess]) -> ServerProcess:
    if kind not in _embedded:
        server = kind(_scratch() / kind.name)
        server.start()
        atexit.register(server.stop)  # registered after the scratch folder's removal, so it runs before it
        _embedded[kind] = server
    return _embedded[kind]


@functools.cache
def _scratch() -> Path:
    """One folder for this session's embedded servers, removed at exit."""
    path = Path(tempfile.mkdtemp(prefix="pam-test-servers-"))
    path.chmod(0o755)  # as root, PostgreSQL runs as an unprivileged user that must enter it
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
