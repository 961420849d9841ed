"""Fixtures the integration tests share: a connection to the test's database, NATS, its names."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from pam_shared.subjects import Subjects


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
def js(nc: Client) -> JetStreamContext:
    return nc.jetstream()


@pytest.fixture
def names(namespace: str) -> Subjects:
    return Subjects(namespace)
