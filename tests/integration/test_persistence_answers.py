"""Persistence's request-reply endpoints over real NATS: history, conversations, messages, analytics."""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client
from nats.micro.request import ERROR_CODE_HEADER
from pam_shared.internal import HistoryRequest, history_reply_decoder
from pam_shared.read_api import (
    AnalyticsRequest,
    ConversationsRequest,
    MessagesRequest,
    analytics_reply_decoder,
    conversations_reply_decoder,
    messages_reply_decoder,
    query_encoder,
)
from support.persistence import analytics_event, assistant_message, count, publish, until, user_message

MINUTE = 60.0


async def ask(nc: Client, subject: str, query: msgspec.Struct, decoder: msgspec.json.Decoder[Any]) -> Any:
    reply = await nc.request(subject, query_encoder.encode(query), timeout=5)
    assert not (reply.headers or {}).get(ERROR_CODE_HEADER), reply.headers
    return decoder.decode(reply.data)


async def test_history_is_the_last_turns_of_the_current_conversation(database_url, db, nc, names, stack):
    stack.persistence(DATABASE_URL=database_url, PAM_CONVERSATION_IDLE_MINUTES="30")
    t0 = time.time() - 3600
    earlier = [user_message("u1", "an older conversation", at=t0 - 120 * MINUTE)]
    turns = [("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2"), ("user", "q3")]
    current = [
        user_message("u1", text, at=t0 + i) if role == "user" else assistant_message("u1", text, at=t0 + i)
        for i, (role, text) in enumerate(turns)
    ]
    other_user = [user_message("u2", "not yours", at=t0 + 1)]
    await publish(nc.jetstream(), names, *earlier, *current, *other_user)
    await until(lambda: count(db, "messages"), lambda n: n == 7)

    reply = await ask(nc, names.history, HistoryRequest("u1", "s1", before=t0 + 4, limit=3), history_reply_decoder)
    assert [(t.role, t.content) for t in reply.turns] == [("assistant", "a1"), ("user", "q2"), ("assistant", "a2")]
    conversation = await db.fetchval("SELECT conversation_id FROM messages WHERE id = $1", current[0].event_id)
    assert reply.conversation_id == str(conversation)

    idle = await ask(nc, names.history, HistoryRequest("u1", "s9", before=t0 + 40 * MINUTE), history_reply_decoder)
    assert idle.conversation_id is None and idle.turns == []


async def test_conversations_come_newest_first_in_pages_and_only_the_users_own(database_url, db, nc, names, stack):
    stack.persistence(DATABASE_URL=database_url, PAM_CONVERSATION_IDLE_MINUTES="30")
    t0 = time.time() - 24 * 3600
    events = [user_message("u1", f"trip {i}", at=t0 + i * 60 * MINUTE, region=f"R{i}") for i in range(3)]
    events += [assistant_message("u1", "noted", at=t0 + 1), user_message("u2", "mine", at=t0)]
    await publish(nc.jetstream(), names, *events)
    await until(lambda: count(db, "messages"), lambda n: n == 5)

    first = await ask(nc, names.conversation_list, ConversationsRequest("u1", limit=2), conversations_reply_decoder)
    assert [(c.region, c.preview, c.message_count) for c in first.conversations] == [
        ("R2", "trip 2", 1),
        ("R1", "trip 1", 1),
    ]
    query = ConversationsRequest("u1", limit=2, cursor=first.next_cursor)
    second = await ask(nc, names.conversation_list, query, conversations_reply_decoder)
    assert [(c.region, c.message_count) for c in second.conversations] == [("R0", 2)]
    assert second.next_cursor is None

    conversation = second.conversations[0].id
    mine = await ask(nc, names.conversation_messages, MessagesRequest("u1", conversation), messages_reply_decoder)
    assert mine.found and [(m.role, m.content) for m in mine.messages] == [("user", "trip 0"), ("assistant", "noted")]
    theirs = await ask(nc, names.conversation_messages, MessagesRequest("u2", conversation), messages_reply_decoder)
    assert theirs == messages_reply_decoder.decode(b'{"found": false}')
    nonsense = await ask(nc, names.conversation_messages, MessagesRequest("u1", "x"), messages_reply_decoder)
    assert not nonsense.found

    bad = await nc.request(names.conversation_list, query_encoder.encode(ConversationsRequest("u1", cursor="zz")))
    assert bad.headers and bad.headers[ERROR_CODE_HEADER] == "400"


async def test_messages_page_oldest_first_and_keep_ui_actions(database_url, db, nc, names, stack):
    stack.persistence(DATABASE_URL=database_url)
    t0 = time.time() - 600
    actions = [{"type": "create", "target": "expense", "data": {"amount": 12.0}}]
    asked = user_message("u1", "fuel $12", at=t0, client_message_id="c1")
    answered = assistant_message("u1", "Logged.", at=t0 + 1, intent="expense", reply_to="c1", ui_actions=actions)
    await publish(
        nc.jetstream(), names, asked, answered, *(user_message("u1", f"m{i}", at=t0 + 2 + i) for i in range(3))
    )
    await until(lambda: count(db, "messages"), lambda n: n == 5)
    conversation = str(await db.fetchval("SELECT id FROM conversations"))

    pages, cursor = [], None
    while True:
        query = MessagesRequest("u1", conversation, limit=2, cursor=cursor)
        page = await ask(nc, names.conversation_messages, query, messages_reply_decoder)
        pages.append([m.content for m in page.messages])
        if (cursor := page.next_cursor) is None:
            break
    assert pages == [["fuel $12", "Logged."], ["m0", "m1"], ["m2"]]
    first = await ask(nc, names.conversation_messages, MessagesRequest("u1", conversation), messages_reply_decoder)
    stored = json.loads(msgspec.json.encode(first.messages[:2]))
    assert stored[0]["client_message_id"] == "c1" and stored[1]["reply_to"] == "c1"
    assert stored[1]["intent"] == "expense" and stored[1]["ui_actions"] == actions


async def test_analytics_counts_days_intents_errors_and_latency_percentiles(database_url, db, nc, names, stack):
    stack.persistence(DATABASE_URL=database_url)
    events = [
        analytics_event("u1", intent="fuel", total_ms=float(ms), time_to_first_chunk_ms=10.0) for ms in range(1, 101)
    ]
    events += [analytics_event("u2", intent="expense", total_ms=9999.0, error_code="llm_error")]
    events += [user_message("u1", "hi"), assistant_message("u1", "hello")]
    await publish(nc.jetstream(), names, *events)
    await until(lambda: count(db, "analytics_events"), lambda n: n == 101)
    await until(lambda: count(db, "messages"), lambda n: n == 2)

    summary = await ask(nc, names.analytics_summary, AnalyticsRequest(days=7), analytics_reply_decoder)
    assert summary.intents == {"fuel": 100, "expense": 1}
    assert summary.errors == {"llm_error": 1}
    assert (summary.total_ms.count, summary.total_ms.p50, summary.total_ms.p90) == (100, 50.5, pytest.approx(90.1))
    assert (summary.first_chunk_ms.count, summary.first_chunk_ms.p99) == (100, 10.0)
    assert [(d.user_messages, d.assistant_messages) for d in summary.messages_per_day] == [(1, 1)]


async def test_each_instance_registers_with_nats_micro(database_url, nc, names, stack):
    stack.persistence(DATABASE_URL=database_url, PAM_INSTANCE_ID="keeper-a")
    stack.persistence(DATABASE_URL=database_url, PAM_INSTANCE_ID="keeper-b")
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(f"$SRV.STATS.{names.persistence_service}", b"", reply=inbox)
    stats = [json.loads((await sub.next_msg(timeout=5)).data) for _ in range(2)]
    assert sorted(s["metadata"]["instance"] for s in stats) == ["keeper-a", "keeper-b"]
    endpoints = {e["name"]: e["subject"] for e in stats[0]["endpoints"]}
    assert endpoints == {
        "history": names.history,
        "conversations": names.conversation_list,
        "messages": names.conversation_messages,
        "analytics": names.analytics_summary,
        "export": names.export,
        "privacy": names.privacy,
        "erase": names.erase,
        "delete-conversation": names.delete_conversation,
    }
