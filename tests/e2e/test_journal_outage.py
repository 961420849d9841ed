"""JetStream unable to take events for longer than any retry: every answered chat still reaches
PostgreSQL exactly once, and events a gateway held when it was shut down arrive after its restart.

The stack runs on a 3-node cluster; its services talk to node 0, which stays up.  Stopping
nodes 1 and 2 keeps core NATS (and so chat) working on node 0, while the 3-replica events
stream has lost its quorum and cannot accept anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from pathlib import Path

import asyncpg
import nats
import pytest
from nats.js.api import StreamConfig
from pam_shared.journal import DUPLICATE_WINDOW_SECONDS, MAX_AGE_SECONDS
from pam_shared.spool import SUFFIX
from pam_shared.subjects import Subjects
from support.client import PamClient, chat_frame
from support.cluster import NatsCluster
from support.persistence import count, until
from support.tokens import token

OUTAGE_SECONDS = 60.0
USERS = 4
PACE_SECONDS = 0.5
"""Each user's pause between chats: a few chats a second in all."""


@pytest.fixture
def nats_url(cluster: NatsCluster) -> str:
    return cluster.url(0)


@pytest.fixture
def service_env(service_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        **service_env,
        "PAM_JOURNAL_SPOOL_DIR": str(tmp_path / "spool"),
        "PAM_USER_MESSAGES_PER_MINUTE": "100000",  # one quota lease per user a minute: few calls to a lost bucket
    }


@pytest.fixture
def stack(stack, cluster: NatsCluster):
    """The usual stack; a test that fails mid-outage gets its nodes back before the stack's cleanup."""
    yield stack
    cluster.restore()


async def replicated_events_stream(url: str, names: Subjects) -> None:
    """The events stream on all three nodes, made before any service (which must keep its replicas)."""
    nc = await nats.connect(url)
    try:
        config = StreamConfig(
            name=names.events_stream,
            subjects=[names.events_wildcard],
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            max_age=MAX_AGE_SECONDS,
            num_replicas=3,
        )
        await nc.jetstream().add_stream(config)
    finally:
        await nc.close()


async def replicas(url: str, names: Subjects) -> int:
    nc = await nats.connect(url)
    try:
        return (await nc.jetstream().stream_info(names.events_stream)).config.num_replicas or 1
    finally:
        await nc.close()


async def stop_jetstream(cluster: NatsCluster) -> None:
    await asyncio.to_thread(cluster.stop_node, 1)
    await asyncio.to_thread(cluster.stop_node, 2)


async def restore_jetstream(cluster: NatsCluster) -> None:
    await asyncio.to_thread(cluster.start_node, 1)
    await asyncio.to_thread(cluster.start_node, 2)
    await asyncio.to_thread(cluster.wait_healthy, 60)


async def chat_until(gateway, user: str, stop: asyncio.Event, answered: list[str], failed: list[str]) -> None:
    """Chat as ``user``, a chat every ``PACE_SECONDS``, until ``stop`` (at least once); the client
    message ids of answered chats go to ``answered``, other ends to ``failed``."""
    async with await PamClient.connect(gateway.ws_url(f"/ws/{user}?token={token(user)}")) as client:
        assert (await client.recv())["type"] == "connection"
        for i in itertools.count():
            message_id = f"{user}-{i}"
            await client.send(chat_frame(f"fuel stop {i}", user, message_id=message_id))
            final = (await client.answer(timeout=30))[-1]
            (answered if final["type"] == "chat_response" else failed).append(message_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PACE_SECONDS)
                return


def stored_once(db: asyncpg.Connection, answered: list[str]):
    """A probe: what is wrong with the stored messages of ``answered`` chats (nothing: ``{}``)."""

    async def problems() -> dict[str, object]:
        rows = await db.fetch(
            "SELECT role, coalesce(client_message_id, reply_to) AS asked, count(*) AS n FROM messages GROUP BY 1, 2"
        )
        found = {(r["role"], r["asked"]): r["n"] for r in rows}
        wanted = {(role, asked) for asked in answered for role in ("user", "assistant")}
        missing = sorted(wanted - found.keys())
        wrong = {key: n for key, n in found.items() if key not in wanted or n != 1}
        return (
            {"missing": len(missing), "first missing": missing[:5], "repeated or unknown": wrong}
            if missing or wrong
            else {}
        )

    return problems


def count_of(items: list[str]):
    async def probe() -> int:
        return len(items)

    return probe


@pytest.mark.timeout(150)
async def test_a_long_jetstream_outage_loses_no_answered_chat(cluster, database_url, db, stack, namespace):
    names = Subjects(namespace)
    await replicated_events_stream(cluster.url(0), names)
    stack.persistence(DATABASE_URL=database_url)
    stack.orchestrator()
    gateway = stack.gateway()
    assert await replicas(cluster.url(0), names) == 3  # ensure_stream kept them

    stop, answered, failed = asyncio.Event(), [], []
    chatting = [asyncio.create_task(chat_until(gateway, f"nomad-{u}", stop, answered, failed)) for u in range(USERS)]
    await until(lambda: count(db, "messages"), lambda n: n >= 2 * USERS, timeout=20)  # stored while healthy

    await stop_jetstream(cluster)
    seen = len(gateway.lines)
    await asyncio.to_thread(gateway.wait_for, "journal falling behind", 30, seen)
    outage_ends = time.monotonic() + OUTAGE_SECONDS
    before = len(answered)
    done, _ = await asyncio.wait(chatting, timeout=outage_ends - time.monotonic())  # chatting meanwhile
    assert not done, [task.result() for task in done]
    during = len(answered) - before
    await restore_jetstream(cluster)
    await until(count_of(answered), lambda n: n >= before + during + USERS, timeout=30)  # and after
    stop.set()
    await asyncio.gather(*chatting)

    assert failed == []
    assert during >= USERS * OUTAGE_SECONDS / 10, during  # chats kept being answered through the outage
    await until(stored_once(db, answered), lambda wrong: wrong == {}, timeout=60)
    await asyncio.to_thread(gateway.wait_for, "journal caught up", 10, seen)


@pytest.mark.timeout(150)
async def test_events_held_at_shutdown_are_published_after_the_restart(
    cluster, database_url, db, stack, namespace, tmp_path
):
    names = Subjects(namespace)
    await replicated_events_stream(cluster.url(0), names)
    stack.persistence(DATABASE_URL=database_url)
    stack.orchestrator()
    gateway = stack.gateway()
    await stop_jetstream(cluster)

    stop, answered, failed = asyncio.Event(), [], []
    stop.set()  # one chat each
    await asyncio.gather(*(chat_until(gateway, f"rover-{u}", stop, answered, failed) for u in range(USERS)))
    await asyncio.to_thread(gateway.wait_for, "journal falling behind")
    await asyncio.to_thread(gateway.stop)  # SIGTERM: a shutdown, which spools what is pending
    gateway.wait_for(r"closing with \d+ events unpublished: spooled")
    spool = tmp_path / "spool" / namespace / "gateway"
    assert len(list(spool.glob(f"*{SUFFIX}"))) == 1

    await restore_jetstream(cluster)
    gateway.start().wait_for("Uvicorn running on")
    gateway.wait_for(f"replaying {USERS} events spooled")
    await until(stored_once(db, answered), lambda wrong: wrong == {}, timeout=60)
    assert failed == [] and len(answered) == USERS
    await until(lambda: asyncio.to_thread(lambda: list(spool.glob(f"*{SUFFIX}"))), lambda files: files == [])
