"""The tests' JetStream cleanup asks again while a cluster cannot answer, and never fails a test.

What the journal outage test hit at teardown on a loaded machine: deleting a stream of the
three-node cluster timed out after 5 s, and a test that had passed errored.
"""

from __future__ import annotations

import asyncio

import nats
import nats.js.errors
import pytest
from nats.js.api import StreamConfig
from support.cleanup import delete_streams
from support.cluster import NatsCluster

pytestmark = pytest.mark.e2e


async def replicated_stream(cluster: NatsCluster, name: str) -> None:
    nc = await nats.connect(cluster.urls.split(","))
    try:
        # A replicated stream's first leader election can take longer than nats-py's 5 s on a loaded machine.
        await nc.jetstream(timeout=15).add_stream(StreamConfig(name=name, subjects=[f"{name}.>"], num_replicas=3))
    finally:
        await nc.close()


async def stream_exists(cluster: NatsCluster, name: str) -> bool:
    nc = await nats.connect(cluster.urls.split(","))
    try:
        await nc.jetstream(timeout=10).stream_info(name)
        return True
    except nats.js.errors.NotFoundError:
        return False
    finally:
        await nc.close()


@pytest.mark.timeout(180)
async def test_a_deletion_the_cluster_cannot_answer_yet_is_asked_again_until_it_can(cluster):
    await replicated_stream(cluster, "CLEANUP_RETRIED")
    await asyncio.to_thread(cluster.stop_node, 1)
    await asyncio.to_thread(cluster.stop_node, 2)  # no quorum: nothing can be deleted now
    cleaning = asyncio.create_task(delete_streams(cluster.url(0), "CLEANUP_RETRIED", "NEVER_MADE"))
    await asyncio.to_thread(cluster.restore)
    assert await cleaning == []
    assert not await stream_exists(cluster, "CLEANUP_RETRIED")


@pytest.mark.timeout(120)
async def test_what_cannot_be_deleted_in_time_is_named_in_a_warning_not_raised(cluster):
    await replicated_stream(cluster, "CLEANUP_LEFT")
    await asyncio.to_thread(cluster.stop_node, 1)
    await asyncio.to_thread(cluster.stop_node, 2)
    with pytest.warns(UserWarning, match=r"left behind .* \['CLEANUP_LEFT'\]"):
        assert await delete_streams(cluster.url(0), "CLEANUP_LEFT", within=3) == ["CLEANUP_LEFT"]
