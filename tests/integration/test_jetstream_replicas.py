"""How many replicas the project asks JetStream for: from the cluster's size, or the setting checked against it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from pam_shared import bus, jetstream
from pam_shared.journal import ensure_stream
from pam_shared.settings import ConfigError, NatsSettings
from pam_shared.subjects import Subjects
from support.cluster import NatsCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    with NatsCluster(3, Path(tmp_path_factory.mktemp("nats"))).start() as running:
        yield running


@pytest.fixture
async def on_cluster(cluster: NatsCluster) -> AsyncIterator[Client]:
    client = await bus.connect(NatsSettings(cluster.urls), "pam-test")
    yield client
    await client.close()


async def test_a_cluster_of_three_gets_three_replicas_unless_told_otherwise(on_cluster, names):
    assert await jetstream.replicas(on_cluster, names, None) == 3
    assert await jetstream.replicas(on_cluster, names, 1) == 1
    with pytest.raises(ConfigError, match=r"^PAM_JETSTREAM_REPLICAS is 5, but NATS has 3 JetStream server\(s\)"):
        await jetstream.replicas(on_cluster, names, 5)


async def test_a_single_server_gets_one_replica_and_refuses_more(nc, names):
    assert await jetstream.replicas(nc, names, None) == 1
    with pytest.raises(ConfigError, match="^PAM_JETSTREAM_REPLICAS is 3, but NATS has 1 JetStream server"):
        await jetstream.replicas(nc, names, 3)


async def test_a_node_down_at_start_keeps_streams_of_three_at_three(cluster, on_cluster, namespace):
    names = Subjects(namespace)
    await ensure_stream(on_cluster.jetstream(), names, 3)
    down = next(i for i in range(3) if on_cluster.connected_url and cluster.url(i) != _url(on_cluster))
    cluster.stop_node(down)
    try:
        assert await jetstream.jetstream_servers(on_cluster) == 2
        assert await jetstream.replicas(on_cluster, names, None) == 3  # not shrunk to 1
        assert await jetstream.replicas(on_cluster, names, 3) == 3  # and no start-up error
    finally:
        cluster.start_node(down)
        cluster.wait_healthy(60)
        await on_cluster.jetstream().delete_stream(names.events_stream)


async def test_single_replica_streams_and_buckets_move_to_three_keeping_their_data(on_cluster, namespace):
    names, js = Subjects(namespace), on_cluster.jetstream()
    await ensure_stream(js, names, 1)
    for i in range(50):
        await jetstream.publish(js, names.event("user", "u1"), b"event %d" % i)
    bucket = await jetstream.ensure_bucket(js, KeyValueConfig(bucket=names.rate_bucket, ttl=120, history=1))
    await bucket.put("nomad", b"7")

    await ensure_stream(js, names, 3)
    moved = await jetstream.ensure_bucket(js, KeyValueConfig(bucket=names.rate_bucket, ttl=120, history=1, replicas=3))
    events = await js.stream_info(names.events_stream)
    assert events.config.num_replicas == 3 and events.state.messages == 50
    assert (await js.stream_info(jetstream.bucket_stream(names.rate_bucket))).config.num_replicas == 3
    assert (await moved.get("nomad")).value == b"7"
    for stream in (names.events_stream, jetstream.bucket_stream(names.rate_bucket)):
        await js.delete_stream(stream)


@pytest.mark.parametrize("survivor", ["the meta leader", "a follower"])
async def test_a_stream_made_while_two_nodes_are_down_is_made_once_they_are_back(cluster, namespace, survivor):
    """A service starting while the cluster cannot place its stream waits for it instead of
    exiting: the last node up answers "no suitable peers" when it leads, silence or 503 when not."""
    leader = cluster.meta_leader()
    names = [f"{cluster.name}-{i}" for i in range(3)]
    kept = names.index(leader) if survivor == "the meta leader" else (names.index(leader) + 1) % 3
    nc = await nats.connect(cluster.url(kept))
    try:
        await _made_across_an_outage(cluster, nc.jetstream(), Subjects(namespace), [i for i in range(3) if i != kept])
    finally:
        await nc.close()


async def _made_across_an_outage(cluster: NatsCluster, js: JetStreamContext, names: Subjects, down: list[int]) -> None:
    for i in down:
        cluster.stop_node(i)
    try:
        with _logged(logging.getLogger("pam.jetstream"), "asking again") as asked_again:
            making = asyncio.create_task(ensure_stream(js, names, 3))
            waiting = asyncio.create_task(asked_again.wait())
            await asyncio.wait({making, waiting}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            assert asked_again.is_set(), making.exception() if making.done() else "no answer for 30 s"
    finally:
        for i in down:
            cluster.start_node(i)
        cluster.wait_healthy(60)
    await asyncio.wait_for(making, 60)
    assert (await js.stream_info(names.events_stream)).config.num_replicas == 3
    await js.delete_stream(names.events_stream)


@contextlib.contextmanager
def _logged(logger: logging.Logger, text: str) -> Iterator[asyncio.Event]:
    """An event set when ``logger`` logs a record containing ``text``."""
    seen = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if text in record.getMessage():
                seen.set()

    watch = Watch()
    logger.addHandler(watch)
    try:
        yield seen
    finally:
        logger.removeHandler(watch)


def _url(nc: Client) -> str:
    assert nc.connected_url is not None
    return f"nats://{nc.connected_url.netloc}"
