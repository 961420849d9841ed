"""Past one machine: the stack on a 3-node NATS cluster, every service given all three URLs,
every stream, bucket and consumer replicated to all three, while nodes die or restart under load.

Users chat at a person's pace, each on its own socket to one of two gateways, with the fake
OpenAI server answering (so orchestrators also ask persistence for history).  Each user keeps
score of every answer's end it sees, by the chat it answers: lost is a chat that never ends,
duplicated one that ends twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from pathlib import Path

import httpx
import nats
import pytest
from nats.js.api import ConsumerConfig, KeyValueConfig, StreamConfig
from pam_shared import jetstream
from pam_shared.journal import DUPLICATE_WINDOW_SECONDS, MAX_AGE_SECONDS
from pam_shared.subjects import Subjects
from support.client import ANSWER_ENDS, PamClient, chat_frame, connected
from support.cluster import NatsCluster
from support.persistence import consumer_settled, count, publish, until, user_message
from support.processes import BIN, ServiceProcess
from support.tokens import token

USERS = 4
PACE_SECONDS = 1.0
"""Each user's pause between chats: a person's pace."""
ANSWER_TIMEOUT = 40.0
ANSWERS_WHILE_DOWN = 6 * USERS
HANDFUL = USERS
"""Chats in flight when a node is killed may end in an error: at most one per user."""


@pytest.fixture
def nats_url(cluster: NatsCluster) -> str:
    return cluster.urls


@pytest.fixture
def service_env(service_env: dict[str, str], tmp_path: Path, llm_env: dict[str, str]) -> dict[str, str]:
    return {
        **service_env,
        **llm_env,
        "PAM_JOURNAL_SPOOL_DIR": str(tmp_path / "spool"),
        "PAM_REPLY_TIMEOUT_SECONDS": "5",  # a chat whose request or reply went down with a node is retried soon
        "PAM_LOG_LEVEL": "info",
    }


@pytest.fixture
def stack(stack, cluster: NatsCluster):
    """The usual stack; a test that fails with a node down gets it back before the stack's cleanup."""
    yield stack
    cluster.restore()


@pytest.fixture
def gateways(stack, database_url):
    """Persistence, two orchestrators and two gateways, each on whichever node it picked."""
    stack.persistence(DATABASE_URL=database_url)
    stack.orchestrator()
    stack.orchestrator()
    return [stack.gateway(), stack.gateway()]


class User:
    """One person chatting on one socket, a chat every ``PACE_SECONDS``, until told to stop."""

    def __init__(self, name: str, gateway) -> None:
        self.name = name
        self.url = gateway.ws_url(f"/ws/{name}?token={token(name)}")
        self.sent: list[str] = []
        self.ends: Counter[str] = Counter()
        self.errors: dict[str, str] = {}
        self.answered: list[str] = []

    async def chat_until(self, stop: asyncio.Event) -> None:
        async with await connected(self.url) as client:
            for i in itertools.count():
                message_id = f"{self.name}-{i}"
                self.sent.append(message_id)
                await client.send(chat_frame(f"fuel stop {i}", self.name, message_id=message_id))
                await self._read_until(client, message_id)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), PACE_SECONDS)
                    break
            await client.send({"type": "ping"})  # whatever still comes for earlier chats arrives before the pong
            await self._read_until(client, None)

    async def _read_until(self, client: PamClient, message_id: str | None) -> None:
        """Read and score frames until the end of chat ``message_id`` (None: until a pong)."""
        while True:
            frame = await client.recv(timeout=ANSWER_TIMEOUT)
            if frame["type"] in ANSWER_ENDS:
                self._score(frame)
                if frame.get("reply_to") == message_id:
                    return
            elif frame["type"] == "pong" and message_id is None:
                return

    def _score(self, frame: dict) -> None:
        asked = frame.get("reply_to") or "?"
        self.ends[asked] += 1
        if frame["type"] == "chat_response":
            self.answered.append(asked)
        else:
            self.errors[asked] = frame["code"]


class Load:
    """Every user chatting at once, and what they saw."""

    def __init__(self, gateways) -> None:
        self.users = [User(f"nomad-{u}", gateways[u % len(gateways)]) for u in range(USERS)]
        self.stop = asyncio.Event()
        self.tasks = [asyncio.create_task(user.chat_until(self.stop)) for user in self.users]

    def answered(self) -> list[str]:
        return [asked for user in self.users for asked in user.answered]

    async def answers_beyond(self, count: int, more: int, timeout: float = 60) -> int:
        """Wait until ``more`` chats past ``count`` were answered (failing if a user gave up)."""

        async def probe() -> int:
            if failed := [t for t in self.tasks if t.done() and t.exception()]:
                raise failed[0].exception()  # type: ignore[misc]
            return len(self.answered())

        return await until(probe, lambda n: n >= count + more, timeout)

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)

    def problems(self, errors_allowed: int) -> dict[str, object]:
        """What is wrong with what the users saw: chats that never ended, or ended twice (nothing: ``{}``)."""
        sent = [asked for user in self.users for asked in user.sent]
        ends = sum((user.ends for user in self.users), Counter())
        errors = {asked: code for user in self.users for asked, code in user.errors.items()}
        found = {
            "lost": [asked for asked in sent if not ends[asked]],
            "duplicated": {asked: n for asked, n in ends.items() if n > 1 or asked not in sent},
            "errors": errors if len(errors) > errors_allowed else {},
        }
        return {key: value for key, value in found.items() if value}


REPLICATED = ("events", "frames", "rate bucket", "persistence consumer")


async def replicas_of(url: str, names: Subjects) -> dict[str, int | None]:
    """Replicas of everything the stack keeps in JetStream."""
    nc = await nats.connect(url.split(","))
    try:
        js = nc.jetstream()
        streams = (names.events_stream, names.frames_stream, f"KV_{names.rate_bucket}")
        found = [(await js.stream_info(stream)).config.num_replicas for stream in streams]
        consumer = await js.consumer_info(names.events_stream, names.persistence_consumer)
        inherited = found[0]  # a consumer of 0 replicas has its stream's
        return dict(zip(REPLICATED, [*found, consumer.config.num_replicas or inherited], strict=True))
    finally:
        await nc.close()


async def events_leader(cluster: NatsCluster, names: Subjects) -> int:
    """The node leading the events stream."""
    nc = await nats.connect(cluster.urls.split(","))
    try:
        info = await nc.jetstream().stream_info(names.events_stream)
    finally:
        await nc.close()
    assert info.cluster is not None
    return [f"{cluster.name}-{i}" for i in range(len(cluster.nodes))].index(info.cluster.leader)


async def settled(url: str, names: Subjects) -> bool:
    """Persistence has every event: nothing waiting for its consumer, nothing unacknowledged."""
    nc = await nats.connect(url.split(","))
    try:
        return await consumer_settled(nc.jetstream(), names)
    finally:
        await nc.close()


def stored_once(http: httpx.AsyncClient, answered: list[str]):
    """A probe through the read API: what is missing or repeated among ``answered`` chats' messages."""

    async def problems() -> dict[str, object]:
        found: Counter[tuple[str, str | None]] = Counter()
        for user in sorted({asked.rsplit("-", 1)[0] for asked in answered}):
            for message in await read_messages(http, user):
                found[(message["role"], message["client_message_id"] or message["reply_to"])] += 1
        wanted = {(role, asked) for asked in answered for role in ("user", "assistant")}
        missing = sorted(wanted - found.keys())
        repeated = {key: n for key, n in found.items() if n > 1}
        return (
            {"missing": missing[:5], "missing count": len(missing), "repeated": repeated} if missing or repeated else {}
        )

    return problems


async def read_messages(http: httpx.AsyncClient, user: str) -> list[dict]:
    headers = {"Authorization": f"Bearer {token(user)}"}
    listed = await http.get("/api/v1/conversations", params={"limit": 100}, headers=headers)
    assert listed.status_code == 200, listed.text
    messages = []
    for conversation in listed.json()["conversations"]:
        path = f"/api/v1/conversations/{conversation['id']}/messages"
        page = await http.get(path, params={"limit": 200}, headers=headers)
        assert page.status_code == 200, page.text
        messages += page.json()["messages"]
    return messages


async def resumed_across_gateways(gateways, user: str) -> dict:
    """An answer cut off by a dropped socket, resumed on the other gateway: its end."""
    url = f"/ws/{user}?token={token(user)}"
    dropped = await connected(gateways[0].ws_url(url))
    await dropped.send(chat_frame("[say:one two three four five six] [gap:0.3]", user, message_id="cut"))
    assert (await dropped.recv())["type"] == "chat_chunk"
    dropped.ws.transport.abort()  # the network drops: no close handshake
    async with await connected(gateways[1].ws_url(url)) as client:
        await client.send({"type": "resume", "last_event_id": 0})
        return (await client.answer(timeout=ANSWER_TIMEOUT))[-1]


@pytest.mark.timeout(180)
async def test_killing_the_node_that_leads_the_events_stream_loses_no_chat(cluster, gateways, namespace):
    names = Subjects(namespace)
    assert await replicas_of(cluster.urls, names) == dict.fromkeys(REPLICATED, 3)
    load = Load(gateways)
    async with httpx.AsyncClient(base_url=gateways[0].http_url(""), timeout=30) as http:
        await load.answers_beyond(0, 2 * USERS)
        leader = await events_leader(cluster, names)
        await asyncio.to_thread(cluster.kill_node, leader)
        await load.answers_beyond(len(load.answered()), ANSWERS_WHILE_DOWN)
        await load.finish()
        assert load.problems(errors_allowed=HANDFUL) == {}

        answered = load.answered()
        assert await until(stored_once(http, answered), lambda wrong: wrong == {}, timeout=60) == {}
        end = await resumed_across_gateways(gateways, "resumer")
        assert end["type"] == "chat_response" and end["message"] == "one two three four five six"
        assert end["reply_to"] == "cut"

        await asyncio.to_thread(cluster.start_node, leader)
        await asyncio.to_thread(cluster.wait_healthy, 60)
        await until(lambda: settled(cluster.urls, names), lambda done: done, timeout=30)
        assert await stored_once(http, answered)() == {}


@pytest.mark.timeout(180)
async def test_a_rolling_restart_of_every_node_loses_and_repeats_nothing(cluster, gateways, namespace):
    load = Load(gateways)
    async with httpx.AsyncClient(base_url=gateways[0].http_url(""), timeout=30) as http:
        await load.answers_beyond(0, USERS)
        for index in range(len(cluster.nodes)):
            await asyncio.to_thread(cluster.stop_node, index)
            await load.answers_beyond(len(load.answered()), 2 * USERS)  # while it is down
            await asyncio.to_thread(cluster.start_node, index)
            await asyncio.to_thread(cluster.wait_healthy, 60)
            await load.answers_beyond(len(load.answered()), 2 * USERS)  # and once it is back
        await load.finish()
        assert load.problems(errors_allowed=0) == {}
        assert await until(stored_once(http, load.answered()), lambda wrong: wrong == {}, timeout=60) == {}


async def left_by_a_single_node(url: str, names: Subjects, events: int) -> None:
    """What the stack made on one node before: streams, bucket and persistence's consumer of one
    replica each, and events waiting in the stream."""
    nc = await nats.connect(url.split(","))
    try:
        js = nc.jetstream()
        stream = StreamConfig(
            name=names.events_stream,
            subjects=[names.events_wildcard],
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            max_age=MAX_AGE_SECONDS,
        )
        await jetstream.ensure_stream(js, stream)  # and its leader is known, so the publishes below find it
        await jetstream.ensure_stream(
            js, StreamConfig(name=names.frames_stream, subjects=[names.frames_wildcard], max_age=900)
        )
        await js.create_key_value(KeyValueConfig(bucket=names.rate_bucket, ttl=120, history=1))
        consumer = ConsumerConfig(durable_name=names.persistence_consumer, filter_subject=names.events_wildcard)
        await js.add_consumer(names.events_stream, consumer)
        await publish(js, names, *(user_message(f"nomad-{i}", f"fuel stop {i}") for i in range(events)))
    finally:
        await nc.close()


@pytest.mark.timeout(120)
async def test_what_one_node_left_is_moved_to_three_replicas_and_no_event_is_lost(
    cluster, stack, database_url, db, namespace
):
    names = Subjects(namespace)
    await left_by_a_single_node(cluster.urls, names, 40)
    assert await replicas_of(cluster.urls, names) == dict.fromkeys(REPLICATED, 1)
    stack.persistence(DATABASE_URL=database_url)
    stack.gateway()
    assert await replicas_of(cluster.urls, names) == dict.fromkeys(REPLICATED, 3)
    await until(lambda: count(db, "messages"), lambda n: n == 40, timeout=30)


@pytest.mark.timeout(60)
async def test_more_replicas_than_the_cluster_has_stop_a_service_at_start(service_env, tmp_path):
    env = {**service_env, "PAM_JETSTREAM_REPLICAS": "4"}
    orchestrator = ServiceProcess("orchestrator", [str(BIN / "pam-orchestrator")], env, tmp_path).start()
    try:
        orchestrator.wait_for(r"configuration error: PAM_JETSTREAM_REPLICAS is 4, but NATS has 3 JetStream server")
        assert orchestrator.proc is not None and await asyncio.to_thread(orchestrator.proc.wait, 15) == 2
    finally:
        orchestrator.stop()
