"""Schema migrations against a real PostgreSQL: idempotent, and race-free between instances."""

from __future__ import annotations

import asyncio

import asyncpg
from pam_persistence import migrations

SCHEMA = """
SELECT table_name, column_name, data_type FROM information_schema.columns
WHERE table_schema = 'public' ORDER BY table_name, column_name
"""
INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname"


async def schema(conn: asyncpg.Connection) -> list[tuple[str, ...]]:
    return [tuple(row) for row in await conn.fetch(SCHEMA)] + [tuple(row) for row in await conn.fetch(INDEXES)]


async def test_running_twice_changes_nothing(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        first = await migrations.apply(conn)
        before = await schema(conn)
        second = await migrations.apply(conn)
        after = await schema(conn)
        versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    assert first == [version for version, _ in migrations.available()] and first
    assert second == []
    assert after == before
    assert [row["version"] for row in versions] == first
    tables = {row[0] for row in before}
    assert {"users", "conversations", "messages", "analytics_events", "dead_letters", "schema_migrations"} <= tables


async def test_instances_starting_at_once_apply_each_migration_once(database_url):
    conns = [await asyncpg.connect(database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrations.apply(conn) for conn in conns))
        versions = await conns[0].fetch("SELECT version FROM schema_migrations")
    finally:
        for conn in conns:
            await conn.close()
    everything = [version for version, _ in migrations.available()]
    assert sorted(results, key=len) == [[], [], [], everything]
    assert sorted(row["version"] for row in versions) == everything
