"""Versioned schema migrations: ``migrations/NNNN_name.sql``, applied in order at start-up.

Everything runs in one transaction holding a transaction-level advisory lock, so two
instances starting at once apply each migration once (the second waits, then finds
nothing to do), and a failed migration leaves the schema as it was.  The lock is
transaction-scoped so it also works behind a transaction-mode pooler.
"""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg
from pam_shared import logs

log = logging.getLogger("pam.persistence.migrations")

LOCK_KEY = 0x70616D_6D696772  # "pam migr": any constant other applications are unlikely to use


def available() -> list[tuple[str, str]]:
    """``(version, sql)`` for every migration file, in version order."""
    folder = resources.files("pam_persistence") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


async def apply(conn: asyncpg.Connection) -> list[str]:
    """Apply the migrations this database has not seen; return their versions."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        applied = []
        for version, sql in available():
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
    for version in applied:
        log.info("applied migration %s", version, extra={"marker": logs.OK})
    return applied
