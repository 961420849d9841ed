"""The persistence writer against real NATS and PostgreSQL: duplicates, bad events, outages, sharing."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from pam_persistence import db as database
from pam_persistence import store
from pam_persistence.conversations import Activity
from pam_shared.privacy import Privacy
from support.persistence import (
    analytics_event,
    answer,
    assistant_message,
    consumer_settled,
    count,
    publish,
    until,
    user_message,
)
from support.processes import ServiceProcess
from support.tcp_proxy import TcpProxy


async def test_an_event_delivered_twice_is_stored_once(database_url, db, js, names, stack):
    stack.persistence(DATABASE_URL=database_url)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    message, analytics = (
        user_message("u1", "I spent $12 on fuel", trace_id=trace),
        analytics_event("u1", trace_id=trace),
    )
    await publish(js, names, message, analytics)
    await publish(js, names, message, analytics, dedupe=False)  # same events again, as a redelivery
    first = user_message("u1", "first marker")
    await publish(js, names, first)
    await until(lambda: count(db, "messages", "id = $1", first.event_id), lambda n: n == 1)
    await publish(js, names, message, analytics, dedupe=False)  # and again, in a later batch
    second = user_message("u1", "second marker")
    await publish(js, names, second)
    await until(lambda: count(db, "messages", "id = $1", second.event_id), lambda n: n == 1)

    assert (await js.stream_info(names.events_stream)).state.messages == 8
    assert await count(db, "messages", "id = $1 AND trace_id = $2", message.event_id, trace) == 1
    assert await count(db, "analytics_events", "id = $1 AND trace_id = $2", analytics.event_id, trace) == 1
    assert await count(db, "messages") == 3
    assert await count(db, "conversations") == 1


async def test_an_answer_is_its_message_and_its_analytics_once_however_often_delivered(
    database_url, db, js, names, stack
):
    stack.persistence(DATABASE_URL=database_url)
    asked = user_message("u1", "diesel in Longreach?", client_message_id="c1")
    answered = answer("u1", "$1.95/L", intent="fuel", reply_to="c1", tokens_out=7, time_to_first_chunk_ms=12.5)
    await publish(js, names, asked, answered)
    await publish(js, names, answered, dedupe=False)  # a redelivery in the same batch
    await until(lambda: count(db, "analytics_events"), lambda n: n == 1)
    await publish(js, names, answered, dedupe=False)  # and in a later one
    marker = user_message("u1", "marker")
    await publish(js, names, marker)
    await until(lambda: count(db, "messages", "id = $1", marker.event_id), lambda n: n == 1)

    message = await db.fetchrow("SELECT role, content, intent, reply_to FROM messages WHERE id = $1", answered.event_id)
    assert tuple(message) == ("assistant", "$1.95/L", "fuel", "c1")
    analytics = await db.fetchrow("SELECT * FROM analytics_events")
    assert analytics["id"] == analytics["message_id"] == answered.event_id
    assert (analytics["intent"], analytics["tokens_out"], analytics["time_to_first_chunk_ms"]) == ("fuel", 7, 12.5)
    assert await count(db, "messages") == 3 and await count(db, "analytics_events") == 1
    assert await until(lambda: consumer_settled(js, names), bool)


async def test_old_style_answers_and_new_ones_are_stored_side_by_side_during_a_deploy(
    database_url, db, js, names, stack
):
    stack.persistence(DATABASE_URL=database_url)
    old_message, old_analytics = assistant_message("u1", "from an old orchestrator"), analytics_event("u1")
    new = answer("u1", "from a new one")
    await publish(js, names, old_message, old_analytics, new)
    await until(lambda: count(db, "analytics_events"), lambda n: n == 2)

    assert await count(db, "messages", "role = 'assistant'") == 2
    ids = {row["id"] for row in await db.fetch("SELECT id FROM analytics_events")}
    assert ids == {old_analytics.event_id, new.event_id}


async def test_two_instances_writing_the_same_batch_at_once_store_it_once(database_url, db):
    pool = await database.open_pool(database_url, 4)
    try:
        batch = [user_message(f"u{i % 3}", f"asked {i}") for i in range(30)] + [answer(f"u{i % 3}") for i in range(30)]
        activity = Activity(timedelta(minutes=30), timedelta(seconds=60))
        keeping = store.Keeping("salt", Privacy())
        await asyncio.gather(*(store.write(pool, batch, [], activity, keeping) for _ in range(3)))
    finally:
        await pool.close()
    assert await count(db, "messages") == 60 and await count(db, "analytics_events") == 30
    assert await count(db, "conversations") == 3


async def test_a_malformed_event_is_parked_and_acked_and_the_next_is_written(database_url, db, js, names, stack):
    persistence = stack.persistence(DATABASE_URL=database_url)
    await js.publish(names.event("user_message", "u1"), b"{not json")
    await js.publish(names.event("analytics", "u1"), b'{"kind": "analytics", "event_id": "x"}')
    refused = user_message("u1", "a NUL byte \x00 PostgreSQL will not store")
    good = [user_message("u1", f"good {i}") for i in range(3)]
    await publish(js, names, good[0], refused, good[1])
    await until(lambda: count(db, "messages"), lambda n: n == 2)
    await publish(js, names, good[2])
    await until(lambda: count(db, "messages", "id = $1", good[2].event_id), lambda n: n == 1)

    parked = await db.fetch("SELECT subject, data, error FROM dead_letters ORDER BY stream_seq")
    assert [row["data"][:9] for row in parked] == [b"{not json", b'{"kind": ', b'{"kind":"']
    assert [row["subject"] for row in parked] == [
        names.event(k, "u1") for k in ("user_message", "analytics", "user_message")
    ]
    assert parked[0]["error"].startswith("malformed") and parked[1]["error"].startswith("malformed")
    assert parked[2]["error"].startswith("refused by PostgreSQL")
    assert await until(lambda: consumer_settled(js, names), bool)
    await until(lambda: printed(persistence, "parking event"), lambda n: n == 3)


async def test_events_wait_while_postgres_is_unreachable_and_are_written_when_it_is_back(
    database_url, db, js, names, stack
):
    with TcpProxy(database_url) as proxy:
        persistence = stack.persistence(DATABASE_URL=proxy.url_through(database_url))
        await publish(js, names, user_message("u1", "before the outage"))
        await until(lambda: count(db, "messages"), lambda n: n == 1)

        proxy.cut()
        during = [user_message("u1", f"during the outage {i}") for i in range(20)]
        await publish(js, names, *during)
        await asyncio.to_thread(persistence.wait_for, "database unavailable")
        info = await js.consumer_info(names.events_stream, names.persistence_consumer)
        assert info.num_pending + info.num_ack_pending == 20  # waiting in JetStream, none acked
        assert await count(db, "messages") == 1
        for _ in range(3):  # still down through several retries (0.1 s, 0.2 s, 0.4 s, 0.8 s apart)
            await asyncio.to_thread(persistence.wait_for, "database unavailable", after=len(persistence.lines))

        proxy.open()
        await until(lambda: count(db, "messages"), lambda n: n == 21, timeout=15)
        await asyncio.to_thread(persistence.wait_for, "database back")
        assert persistence.running
        assert await until(lambda: consumer_settled(js, names), bool)


async def test_starting_while_postgres_is_unreachable_waits_for_it_instead_of_crashing(
    database_url, db, js, names, stack
):
    with TcpProxy(database_url) as proxy:
        proxy.cut()
        starting = asyncio.create_task(
            asyncio.to_thread(stack.persistence, DATABASE_URL=proxy.url_through(database_url))
        )
        process = await until(lambda: _latest(stack), lambda p: p is not None)
        for _ in range(3):  # retrying, not exiting
            await asyncio.to_thread(process.wait_for, "database .* not ready", after=len(process.lines))
        assert process.running
        await publish(js, names, user_message("u1", "sent while persistence waits for its database"))
        proxy.open()
        await starting
        await until(lambda: count(db, "messages"), lambda n: n == 1)


async def printed(process: ServiceProcess, text: str) -> int:
    """How many of the lines ``process`` has printed so far contain ``text``."""
    return sum(text in line for line in process.lines)


async def _latest(stack):
    return stack.processes[-1] if stack.processes and stack.processes[-1].proc is not None else None


async def test_instances_share_the_consumer_and_keep_one_conversation_per_user(database_url, db, js, names, stack):
    settings = {"DATABASE_URL": database_url, "PAM_PERSIST_BATCH_SIZE": "5"}
    instances = [stack.persistence(**settings, PAM_INSTANCE_ID=f"store-{i}") for i in range(2)]
    events = [user_message(f"u{i % 7}", f"message {i}") for i in range(200)]
    await publish(js, names, *events)
    await until(lambda: count(db, "messages"), lambda n: n == 200)

    async def wrote() -> list[int]:  # each line is printed after its batch commits
        return [await printed(p, "stored user_message event") for p in instances]

    assert min(await until(wrote, lambda counts: sum(counts) == 200)) > 0
    assert (await js.stream_info(names.events_stream)).state.consumer_count == 1
    per_user = await db.fetch("SELECT user_id, count(*) AS n FROM conversations GROUP BY user_id")
    assert sorted(row["n"] for row in per_user) == [1] * 7


async def test_an_idle_gap_starts_a_new_conversation_even_when_events_arrive_out_of_order(
    database_url, db, js, names, stack
):
    stack.persistence(DATABASE_URL=database_url, PAM_CONVERSATION_IDLE_MINUTES="30")
    t0 = time.time() - 3 * 3600
    later = user_message("u1", "back after lunch", at=t0 + 3600, region="Victoria")
    await publish(js, names, later)
    await until(lambda: count(db, "messages"), lambda n: n == 1)
    morning = [
        user_message("u1", "fuel?", at=t0, region="Queensland"),
        assistant_message("u1", "$1.89/L", at=t0 + 5),
        user_message("u1", "and tomorrow?", at=t0 + 29 * 60),
    ]
    await publish(js, names, *reversed(morning))
    await until(lambda: count(db, "messages"), lambda n: n == 4)

    rows = await db.fetch(
        "SELECT c.region, c.started_at, c.last_activity_at, count(m.id) AS n FROM conversations c"
        " JOIN messages m ON m.conversation_id = c.id GROUP BY c.id ORDER BY c.started_at"
    )
    assert [(row["region"], row["n"]) for row in rows] == [("Queensland", 3), ("Victoria", 1)]
    assert rows[0]["started_at"].timestamp() == pytest.approx(t0, abs=1e-3)
    assert rows[0]["last_activity_at"].timestamp() == pytest.approx(t0 + 29 * 60, abs=1e-3)


async def test_an_instance_killed_holding_a_batch_loses_none_of_it_while_another_acks_later_ones(
    database_url, db, js, names, stack
):
    """Acks are per event: the other instance's acks of later events must not ack the held ones
    (an ack-all policy would, and they would be gone with the killed instance)."""
    settings = {"PAM_PERSIST_BATCH_SIZE": "5"}
    with TcpProxy(database_url) as proxy:
        holder = stack.persistence(**settings, DATABASE_URL=proxy.url_through(database_url), PAM_INSTANCE_ID="holder")
        proxy.cut()
        held = [user_message("u1", f"held {i}") for i in range(10)]
        await publish(js, names, *held)
        await asyncio.to_thread(holder.wait_for, "database unavailable")
        stack.persistence(**settings, DATABASE_URL=database_url, PAM_INSTANCE_ID="writer")
        later = [user_message("u2", f"later {i}") for i in range(10)]
        await publish(js, names, *later)
        await until(lambda: count(db, "messages"), lambda n: n == 10)
        info = await js.consumer_info(names.events_stream, names.persistence_consumer)
        assert info.num_ack_pending == 10  # the held ones, not acked along with the later ones
        holder.kill()
        await until(lambda: count(db, "messages"), lambda n: n == 20, timeout=45)  # redelivered after ack wait


@pytest.mark.parametrize(("resolution", "last"), [({}, 0), ({"PAM_ACTIVITY_RESOLUTION_SECONDS": "0"}, 10)])
async def test_a_conversations_stored_activity_moves_by_more_than_the_resolution(
    database_url, db, js, names, stack, resolution, last
):
    """By default a minute: a message 10 s after the last leaves the stored time where it was."""
    stack.persistence(DATABASE_URL=database_url, **resolution)
    t0 = time.time() - 3600
    await publish(js, names, user_message("u1", "first", at=t0))
    await until(lambda: count(db, "messages"), lambda n: n == 1)
    await publish(js, names, user_message("u1", "10 s later", at=t0 + 10))  # in a batch of its own
    await until(lambda: count(db, "messages"), lambda n: n == 2)
    stored = await db.fetchval("SELECT last_activity_at FROM conversations")
    assert stored.timestamp() == pytest.approx(t0 + last, abs=1e-3)
