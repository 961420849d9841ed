"""The NATS and PostgreSQL a local stack uses: the ones the environment names, or embedded ones.

A URL from the environment is used as it is, after checking that something answers
there; nothing is started in its place, because a silently different server would hide
a mistake.  Without one, an embedded server keeps its data under the stack's data folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from pam_devstack.embedded import EmbeddedNats, EmbeddedPostgres, ServerProcess, reachable

DATABASE = "pam"


class StackError(Exception):
    """The stack cannot start; the message tells the person what to do."""


@dataclass
class Backing:
    nats_url: str = ""
    database_url: str = ""
    notes: list[str] = field(default_factory=list)


def resolve(env: Mapping[str, str], home: Path, started: list[ServerProcess]) -> Backing:
    """Find or start NATS and PostgreSQL; every server started is appended to ``started`` at once,
    so the caller can stop it even if a later step fails."""
    backing = Backing()
    backing.nats_url = _given(env, "NATS_URL", "NATS", backing) or _embedded_nats(home, started, backing)
    backing.database_url = _given(env, "DATABASE_URL", "PostgreSQL", backing) or _embedded_postgres(
        home, started, backing
    )
    return backing


def _given(env: Mapping[str, str], name: str, what: str, backing: Backing) -> str | None:
    url = env.get(name, "").strip()
    if not url:
        return None
    if not reachable(url):
        raise StackError(
            f"{name} is set to {url}, but no {what} answers there. "
            f"Start that server, or unset {name} and pam-stack starts an embedded one."
        )
    backing.notes.append(f"{what:<11} {_without_password(url)} (from {name})")
    return url


def _without_password(url: str) -> str:
    parsed = urlparse(url)
    if not parsed.password:
        return url
    return parsed._replace(netloc=parsed.netloc.replace(f":{parsed.password}@", ":***@")).geturl()


def _embedded_nats(home: Path, started: list[ServerProcess], backing: Backing) -> str:
    server = EmbeddedNats(home / "nats")
    started.append(server)
    server.start()
    backing.notes.append(f"{'NATS':<11} {server.url} (embedded, JetStream data in {server.home})")
    return server.url


def _embedded_postgres(home: Path, started: list[ServerProcess], backing: Backing) -> str:
    server = EmbeddedPostgres(home / "postgres")
    started.append(server)
    server.start()
    url = server.ensure_database(DATABASE)
    backing.notes.append(f"{'PostgreSQL':<11} {url} (embedded, data in {server.data_dir})")
    backing.notes.extend(f"{'':<11} {note}" for note in server.notes)
    return url
