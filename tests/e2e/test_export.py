"""``GET /api/v1/users/me/export``: everything stored about the user and nothing of anyone else's,
streamed page by page, so a long history neither sits in the gateway nor arrives only at the end."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import msgspec
import nats
import pytest
from pam_shared.read_api import Export, ExportRequest, PrivacyRecord
from pam_shared.subjects import Subjects
from support.client import PamClient, connected
from support.persistence import count, until
from support.tokens import token

EXPORT = "/api/v1/users/me/export"
BUDGET = {"PAM_USER_TOKENS_PER_DAY": "100000"}
MESSAGE_FIELDS = ("id", "role", "content", "intent", "created_at", "client_message_id", "reply_to", "state",
                  "edit_of", "session_id", "current_page", "trace_id")  # fmt: skip
ANALYTICS_COLUMNS = ("id", "session_id", "message_id", "intent", "engine", "model", "orchestrator", "endpoint",
                     "total_ms", "time_to_first_chunk_ms", "tokens_in", "tokens_out", "cached_tokens", "error_code",
                     "created_at", "trace_id")  # fmt: skip
BENS = """
SELECT id::text FROM conversations WHERE user_id = 'ben'
UNION SELECT id FROM messages WHERE user_id = 'ben' UNION SELECT id FROM analytics_events WHERE user_id = 'ben'
"""
FILLER = 'Ünïcødé "quoted" text\\ with a newline\n and a 🚐, ' * 200


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user)}"}


async def ended(client: PamClient, frame: dict[str, Any]) -> dict[str, Any]:
    await client.send(frame)
    end = (await client.answer())[-1]
    assert end["type"] == "chat_response", end
    return end


async def stored_messages(db: asyncpg.Connection, conversation_id: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        f"SELECT {', '.join(MESSAGE_FIELDS)} FROM messages WHERE conversation_id = $1 ORDER BY created_at, id",
        uuid.UUID(conversation_id),
    )
    return [dict(row) for row in rows]


async def test_an_export_holds_exactly_what_was_stored_about_the_user_and_nothing_of_anyone_else(
    stack, llm_env, database_url, db
):
    stack.persistence(DATABASE_URL=database_url)
    stack.orchestrator(**llm_env, **BUDGET)
    gateway = stack.gateway(**BUDGET)
    async with await connected(gateway.ws_url(f"/ws/ann?token={token('ann')}")) as ann:
        first = await ended(ann, {"type": "chat", "message": "[nth] [usage:40:20] where to camp?", "message_id": "q1"})
        await ended(ann, {"type": "regenerate", "answer_id": first["message_id"], "message_id": "r1"})
        await ended(ann, {"type": "chat", "message": "[nth] [usage:40:20] diesel?", "message_id": "q2"})
        edit = {"type": "edit", "user_message_id": "q2", "message": "[nth] [usage:40:20] petrol?", "message_id": "q3"}
        await ended(ann, edit)
    async with await connected(gateway.ws_url(f"/ws/ben?token={token('ben')}")) as ben:
        await ended(ben, {"type": "chat", "message": "[usage:40:20] ben's own secret", "message_id": "b1"})
    await until(lambda: count(db, "messages"), lambda n: n == 9)
    await until(lambda: count(db, "analytics_events"), lambda n: n == 5)
    chose = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    await db.execute("INSERT INTO privacy_settings VALUES ('ann', true, false, $1)", chose)

    async with httpx.AsyncClient(base_url=gateway.http_url(""), timeout=10) as http:
        timer = await http.post(
            "/api/v1/pam/timers", json={"duration_seconds": 3600, "label": "tea"}, headers=bearer("ann")
        )
        usage = await until(
            lambda: http.get("/api/v1/usage", headers=bearer("ann")), lambda r: r.json()["day"]["used"] == 240
        )
        response = await http.get(EXPORT, headers=bearer("ann"))
        listed = (await http.get("/api/v1/conversations", headers=bearer("ann"))).json()["conversations"]
        tree = (await http.get(f"/api/v1/conversations/{listed[0]['id']}/messages", headers=bearer("ann"))).json()
        theirs = await http.get(EXPORT, headers=bearer("ben"))
        unauthenticated = await http.get(EXPORT)
        demo = await http.get(EXPORT, headers={"Authorization": "Bearer demo-token"})

    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"].startswith('attachment; filename="pam-export-')
    exported = msgspec.json.decode(response.content, type=Export)
    assert exported.user_id == "ann"
    assert exported.privacy == PrivacyRecord(store_conversations=True, analytics=False, updated_at=chose)
    assert msgspec.to_builtins(exported.usage) == usage.json()
    assert [(t.timer_id, t.label) for t in exported.timers] == [(timer.json()["timer"]["timer_id"], "tea")]
    seen = await db.fetchrow("SELECT first_seen_at, last_seen_at FROM users WHERE id = 'ann'")
    assert (exported.first_seen_at, exported.last_seen_at) == (seen["first_seen_at"], seen["last_seen_at"])

    [conversation] = exported.conversations
    stored = await db.fetchrow(
        "SELECT id, started_at, last_activity_at, region FROM conversations WHERE user_id = 'ann'"
    )
    heads = (conversation.id, conversation.started_at, conversation.last_activity_at, conversation.region)
    assert heads == (str(stored["id"]), stored["started_at"], stored["last_activity_at"], stored["region"])
    messages = conversation.messages
    assert [{f: getattr(m, f) for f in MESSAGE_FIELDS} for m in messages] == await stored_messages(db, conversation.id)
    branches = [{"parent_id": m.parent_id, "siblings": m.siblings, "current": m.current} for m in messages]
    assert branches == [{k: m[k] for k in ("parent_id", "siblings", "current")} for m in tree["messages"]]
    q1, a1, a2, q2, a3, q3, a4 = messages
    assert a1.siblings == [a2.id] and a1.state == a2.state == "complete"  # the regenerated answer, kept
    assert q3.edit_of == "q2" and q3.siblings == [q2.id] and not q2.current and q3.current  # the edit

    rows = await db.fetch(
        f"SELECT {', '.join(ANALYTICS_COLUMNS)} FROM analytics_events WHERE user_id = 'ann' ORDER BY created_at, id"
    )
    assert [msgspec.to_builtins(r) for r in exported.analytics] == [msgspec.to_builtins(dict(r)) for r in rows]
    assert len(rows) == 4

    bens = [r["id"] for r in await db.fetch(BENS)]
    assert len(bens) == 3 and not any(id.encode() in response.content for id in bens)
    assert b"ben's own secret" not in response.content
    other = msgspec.json.decode(theirs.content, type=Export)
    assert other.user_id == "ben" and other.privacy == PrivacyRecord(True, True, None)  # no row: the defaults
    assert [m.content for c in other.conversations for m in c.messages][0] == "[usage:40:20] ben's own secret"
    assert other.usage.day.used == 60 and other.timers == [] and len(other.analytics) == 1

    assert (unauthenticated.status_code, unauthenticated.json()["error"]) == (401, "token_invalid")
    assert (demo.status_code, demo.json()["error"]) == (401, "token_invalid")


async def long_history(
    db: asyncpg.Connection, user: str, conversations: int, per: int, size: int
) -> list[tuple[str, str]]:
    """``conversations`` x ``per`` messages of about ``size`` characters each, and an analytics row
    per answer, straight into the database; the messages' ids and contents, in order."""
    start = datetime.now(UTC) - timedelta(days=30)
    await db.execute("INSERT INTO users VALUES ($1, $2, $2)", user, start)
    messages, heads, analytics = [], [], []
    for c in range(conversations):
        conversation_id = uuid.uuid4()
        began = start + timedelta(days=c)
        heads.append((conversation_id, user, began, began + timedelta(seconds=per), "Queensland"))
        for i in range(per):
            at = began + timedelta(seconds=i)
            message_id = f"m{c:02d}-{i:05d}"
            role = "user" if i % 2 == 0 else "assistant"
            content = f"{c}/{i} {FILLER[: size - 10]}"
            messages.append(
                (message_id, conversation_id, user, "s1", role, content, None if i % 2 == 0 else "general", at)
            )
            if role == "assistant":
                analytics.append((f"a{message_id}", user, "s1", message_id, "general", "llm", "fake", "o1", 120.5, at))
    await db.copy_records_to_table(
        "conversations", records=heads, columns=("id", "user_id", "started_at", "last_activity_at", "region")
    )
    columns = ("id", "conversation_id", "user_id", "session_id", "role", "content", "intent", "created_at")
    await db.copy_records_to_table("messages", records=messages, columns=columns)
    columns = (
        "id",
        "user_id",
        "session_id",
        "message_id",
        "intent",
        "engine",
        "model",
        "orchestrator",
        "total_ms",
        "created_at",
    )
    await db.copy_records_to_table("analytics_events", records=analytics, columns=columns)
    return [(m[0], m[5]) for m in messages]


async def export_status(http: httpx.AsyncClient, user: str) -> int:
    """The status an export starts with (the download itself is left unread)."""
    async with http.stream("GET", EXPORT, headers=bearer(user)) as response:
        return response.status_code


def peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


@pytest.fixture
async def long_export(stack, database_url, db):
    """A gateway and persistence over 5,000 messages of about 8 KB each (some 40 MB of JSON)."""
    persistence = stack.persistence(DATABASE_URL=database_url)
    history = await long_history(db, "long", conversations=5, per=1000, size=8000)
    gateway = stack.gateway()
    return gateway, persistence, history


async def test_a_long_history_streams_whole_with_the_gateways_memory_bounded(long_export, nats_url, namespace):
    gateway, _, history = long_export
    asked: list[str] = []
    nc = await nats.connect(nats_url)

    async def note(msg: Any) -> None:
        request = msgspec.json.decode(msg.data, type=ExportRequest)
        asked.append(f"asked {request.part}")

    await nc.subscribe(Subjects(namespace).export, cb=note)
    async with httpx.AsyncClient(base_url=gateway.http_url(""), timeout=30) as http:
        warm = await http.get(EXPORT, headers=bearer("somebody-else"))  # every code path once, on a tiny export
        assert warm.status_code == 200 and msgspec.json.decode(warm.content, type=Export).conversations == []
        before = peak_rss_kb(gateway.proc.pid)
        body = bytearray()
        async with http.stream("GET", EXPORT, headers=bearer("long")) as response:
            chunks = response.aiter_raw()
            body += await anext(chunks)
            asked.append("first bytes")
            second = await http.get(EXPORT, headers=bearer("long"))  # while the first is still streaming
            async for chunk in chunks:
                body += chunk
        after = peak_rss_kb(gateway.proc.pid)
        await until(lambda: export_status(http, "long"), lambda status: status == 200)  # its turn given back
    await nc.close()

    assert response.status_code == 200
    exported = msgspec.json.decode(body, type=Export)
    assert json.loads(body)["user_id"] == "long"
    assert [(m.id, m.content) for c in exported.conversations for m in c.messages] == history
    assert len(exported.conversations) == 5 and len(exported.analytics) == 2500
    assert len(body) > 40_000_000
    growth = (after - before) * 1024
    assert growth < len(body) / 8, f"the gateway's peak RSS grew {growth} bytes for a {len(body)}-byte export"
    assert asked.index("first bytes") < max(i for i, what in enumerate(asked) if what == "asked conversations")
    assert asked.count("asked conversations") > 50
    assert (second.status_code, second.json()["error"]) == (409, "export_in_progress")


async def test_an_export_whose_persistence_stops_answering_is_cut_off_not_finished(long_export, stack, database_url):
    gateway, persistence, _ = long_export
    async with httpx.AsyncClient(base_url=gateway.http_url(""), timeout=30) as http:
        body = bytearray()
        async with http.stream("GET", EXPORT, headers=bearer("long")) as response:
            chunks = response.aiter_raw()
            body += await anext(chunks)
            persistence.kill()
            with pytest.raises(httpx.RemoteProtocolError):
                async for chunk in chunks:
                    body += chunk
        assert response.status_code == 200 and len(body) > 0
        with pytest.raises(json.JSONDecodeError):
            json.loads(body)
        gateway.wait_for(r"export cut off at page \d+ \(conversations\): persistence_unavailable")

        stack.persistence(DATABASE_URL=database_url)
        assert await export_status(http, "long") == 200  # the cut-off export gave the user's turn back


async def test_without_persistence_an_export_is_refused_before_it_starts(stack):
    gateway = stack.gateway()
    async with httpx.AsyncClient(base_url=gateway.http_url(""), timeout=10) as http:
        response = await http.get(EXPORT, headers=bearer("ann"))
    assert (response.status_code, response.json()["error"]) == (503, "persistence_unavailable")
