"""Where the tests find NATS and PostgreSQL: the environment, the usual local ports."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def reachable(url: str, timeout: float = 1.0) -> bool:
    parsed = urlparse(url.split(",")[0])
    if not parsed.hostname:
        return os.path.exists(parsed.path or "")
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 0), timeout=timeout):
            return True
    except OSError:
        return False


def nats_url() -> str:
    url = os.environ.get("NATS_URL", DEFAULT_NATS_URL)
    if not reachable(url):
        raise RuntimeError(f"NATS is not reachable at {url}")
    return url


def postgres_admin_url() -> str:
    """A URL of a database we may CREATE/DROP test databases from."""
    url = os.environ.get("PAM_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    if not reachable(url):
        raise RuntimeError(f"PostgreSQL is not reachable at {url}")
    return url
