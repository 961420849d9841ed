"""A timer outlives the NATS node that led its stream: on a 3-node cluster, the timers stream
(and the orchestrators' consumer of what goes off) has three replicas, so killing the leader
before the timer's time still rings it, once, to the user's socket."""

from __future__ import annotations

import json

import httpx
import nats
import pytest
from pam_shared import delivery
from pam_shared.subjects import Subjects
from support.cluster import NatsCluster
from support.tokens import token
from support.wheels_client import ShippedClient

USER = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


@pytest.fixture
def nats_url(cluster: NatsCluster) -> str:
    return cluster.urls


@pytest.fixture
def stack(stack, cluster: NatsCluster):
    """A test that fails with a node down gets it back before the stack's cleanup."""
    yield stack
    cluster.restore()


async def timers_leader(cluster: NatsCluster, names: Subjects) -> tuple[int, int]:
    """The node leading the timers stream, and the stream's replicas."""
    nc = await nats.connect(cluster.urls.split(","))
    try:
        info = await nc.jetstream().stream_info(names.timers_stream)
    finally:
        await nc.close()
    assert info.cluster is not None
    leader = [f"{cluster.name}-{i}" for i in range(len(cluster.nodes))].index(info.cluster.leader)
    return leader, info.config.num_replicas or 1


async def kept_rings(url: str, names: Subjects) -> list[dict]:
    nc = await nats.connect(url.split(","))
    try:
        frames = [json.loads(m.data) async for m in delivery.replay(nc.jetstream(), names, USER, 0)]
    finally:
        await nc.close()
    return [f for f in frames if f["type"] == "timer_expired"]


@pytest.mark.timeout(120)
async def test_a_timer_goes_off_once_after_the_node_leading_its_stream_is_killed(stack, cluster, namespace):
    names = Subjects(namespace)
    stack.orchestrator()
    gateway = stack.gateway()
    client = await ShippedClient.connect(gateway.ws_url(""), USER, token(USER))
    try:
        await client.frame()
        async with httpx.AsyncClient(timeout=30) as http:
            made = await http.post(
                gateway.http_url("/api/v1/pam/timers"),
                json={"duration_seconds": 6, "label": "engine cool"},
                headers={"Authorization": f"Bearer {token(USER)}"},
            )
        leader, replicas = await timers_leader(cluster, names)
        cluster.kill_node(leader)
        while (frame := await client.frame(60))["type"] != "timer_expired":
            pass
    finally:
        await client.close()
    assert made.status_code == 201 and replicas == 3
    assert frame["timer_id"] == made.json()["timer"]["timer_id"] and frame["label"] == "engine cool"
    assert len(await kept_rings(cluster.urls, names)) == 1
