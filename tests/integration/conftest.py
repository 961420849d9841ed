"""Fixtures the integration tests share: a connection to the test's database, NATS, its names."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pam_shared.subjects import Subjects


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
def js(nc: Client) -> JetStreamContext:
    return nc.jetstream()


@pytest.fixture
async def names(namespace: str, nc: Client) -> AsyncIterator[Subjects]:
    """The test's subjects; the streams and buckets made under them are removed afterwards."""
    subjects = Subjects(namespace)
    yield subjects
    made = (
        subjects.events_stream,
        subjects.frames_stream,
        f"KV_{subjects.rate_bucket}",
        f"KV_{subjects.idempotency_bucket}",
        f"KV_{subjects.turns_bucket}",
        f"KV_{subjects.answering_bucket}",
        f"KV_{subjects.budget_bucket}",
    )
    for stream in made:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(stream)
