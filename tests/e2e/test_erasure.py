"""Erasure: after ``DELETE /api/v1/users/me`` nothing of the user is left anywhere, in PostgreSQL or
in any stream or key-value bucket of the namespace (every one of them is read, not a list), while
another user's data is untouched; a late event does not bring them back."""

from __future__ import annotations

import time
import uuid

import httpx
import nats
import pytest
from nats.js.errors import NotFoundError
from pam_shared.subjects import Subjects
from support.client import PamClient, chat_frame
from support.persistence import count, publish, until, user_message
from support.tokens import token

ERASED = 4410


def bearer(user: str, **claims: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, **claims)}"}


async def chat(client: PamClient, user: str, text: str) -> None:
    await client.send(chat_frame(text, user, message_id=uuid.uuid4().hex))
    assert (await client.answer())[-1]["type"] == "chat_response"


async def rows_naming(db, needles: list[str]) -> dict[str, int]:
    """Rows of every table of the database whose text contains any of ``needles``."""
    tables = [r["tablename"] for r in await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    found = {}
    for table in tables:
        where = " OR ".join(f"t::text LIKE '%' || ${i + 1} || '%'" for i in range(len(needles)))
        found[table] = await db.fetchval(f'SELECT count(*) FROM "{table}" AS t WHERE {where}', *needles)
    return {table: n for table, n in found.items() if n}


async def stream_messages_naming(nats_url: str, namespace: str, needles: list[str]) -> dict[str, int]:
    """Messages of every stream of the namespace (key-value buckets too) whose subject, headers
    or data contain any of ``needles``."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    prefixes = (namespace.upper() + "_", f"KV_{namespace.upper()}_")
    found: dict[str, int] = {}
    try:
        for info in await js.streams_info():
            name = info.config.name or ""
            if not name.startswith(prefixes):
                continue
            for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
                try:
                    msg = await js.get_msg(name, seq)
                except NotFoundError:
                    continue
                text = f"{msg.subject} {msg.headers} ".encode() + (msg.data or b"")
                if any(n.encode() in text for n in needles):
                    found[name] = found.get(name, 0) + 1
    finally:
        await nc.close()
    return found


@pytest.fixture
async def two_users(database_url, db, stack, nats_url, namespace):
    """``ana`` and ``ben`` have chatted and set a timer (ana also chose privacy settings), all of it stored."""
    stack.persistence(DATABASE_URL=database_url)
    stack.orchestrator(PAM_USER_TOKENS_PER_DAY="100000")
    gateway = stack.gateway(PAM_USER_TOKENS_PER_DAY="100000")
    ana, ben = str(uuid.uuid4()), str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=gateway.http_url(""), timeout=70) as http:
        changed = await http.put("/api/v1/users/me/privacy", json={"analytics": True}, headers=bearer(ana))
        assert changed.status_code == 200
        for user in (ana, ben):  # a timer each, pending in the timers stream
            timer = {"duration_seconds": 3600, "label": "check the tyres"}
            assert (await http.post("/api/v1/pam/timers", json=timer, headers=bearer(user))).status_code == 201
        for user in (ana, ben):
            async with await PamClient.connect(gateway.ws_url(f"/ws/{user}?token={token(user)}")) as client:
                await client.recv()
                await chat(client, user, f"{user} spent $40 on diesel in Broome")
                await chat(client, user, "what's my budget?")
        await until(lambda: count(db, "messages"), lambda n: n == 8)
        yield gateway, http, ana, ben


async def test_an_erased_user_is_nowhere_and_another_user_is_untouched(two_users, db, nats_url, namespace):
    gateway, http, ana, ben = two_users
    assert await rows_naming(db, [ana]) and await stream_messages_naming(nats_url, namespace, [ana])
    ben_rows = await rows_naming(db, [ben])
    ben_messages = await stream_messages_naming(nats_url, namespace, [ben])

    async with await PamClient.connect(gateway.ws_url(f"/ws/{ana}?token={token(ana)}")) as connected:
        await connected.recv()
        erased = await http.delete("/api/v1/users/me", headers=bearer(ana))
        assert erased.status_code == 200, erased.text
        await connected.ws.wait_closed()
        assert connected.ws.close_code == ERASED

    assert erased.json()["rows"]["messages"] == 4 and erased.json()["services"] == 2
    assert await rows_naming(db, [ana]) == {}
    assert await stream_messages_naming(nats_url, namespace, [ana]) == {}
    assert await rows_naming(db, [ben]) == ben_rows
    assert await stream_messages_naming(nats_url, namespace, [ben]) == ben_messages

    again = await http.delete("/api/v1/users/me", headers=bearer(ana))
    assert again.status_code == 200 and sum(again.json()["rows"].values()) == 0


async def test_an_event_accepted_before_the_erasure_does_not_bring_the_user_back(two_users, db, nats_url, namespace):
    gateway, http, ana, ben = two_users
    accepted = time.time()
    assert (await http.delete("/api/v1/users/me", headers=bearer(ana))).status_code == 200

    nc = await nats.connect(nats_url)
    try:  # a gateway's spool replays it, long after
        late = user_message(ana, "a message sent just before the erasure", at=accepted)
        after = user_message(ben, "and one of ben's after it")
        await publish(nc.jetstream(), Subjects(namespace), late, after)
    finally:
        await nc.close()
    await until(lambda: count(db, "messages", "id = $1", after.event_id), lambda n: n == 1)
    assert await rows_naming(db, [ana]) == {}
    await until(lambda: stream_messages_naming(nats_url, namespace, [ana]), lambda found: found == {})


async def test_an_operator_erases_a_user_over_nats_with_a_service_token(two_users, db, nats_url, namespace):
    _, _, ana, ben = two_users
    nc = await nats.connect(nats_url)
    try:
        subject = Subjects(namespace).erase
        refused = await nc.request(subject, f'{{"token": "{token(ben)}", "user_id": "{ana}"}}'.encode(), timeout=30)
        assert refused.headers and refused.headers.get("Nats-Service-Error-Code") == "403"
        operator = token("ops", role="service_role")
        done = await nc.request(subject, f'{{"token": "{operator}", "user_id": "{ana}"}}'.encode(), timeout=30)
        assert not (done.headers or {}).get("Nats-Service-Error-Code"), done.data
    finally:
        await nc.close()
    assert await rows_naming(db, [ana]) == {}
    assert await rows_naming(db, [ben])


async def test_a_user_erases_one_conversation(two_users, db):
    _, http, ana, ben = two_users
    [conversation] = (await http.get("/api/v1/conversations", headers=bearer(ana))).json()["conversations"]
    path = f"/api/v1/conversations/{conversation['id']}"
    assert (await http.delete(path, headers=bearer(ben))).status_code == 404
    erased = await http.delete(path, headers=bearer(ana))
    assert erased.status_code == 200 and erased.json() == {"found": True, "messages": 4}
    assert (await http.get("/api/v1/conversations", headers=bearer(ana))).json()["conversations"] == []
    assert await count(db, "messages", "user_id = $1", ben) == 4
