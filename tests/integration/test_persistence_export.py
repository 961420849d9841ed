"""Persistence's export pages over real NATS and PostgreSQL: bounded by rows and by bytes, in
order, the user's own rows only, and a cursor carried from page to page."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client
from nats.micro.request import ERROR_CODE_HEADER
from pam_shared.read_api import ExportPage, ExportRequest, PrivacyRecord, export_page_decoder, query_encoder
from pam_shared.subjects import Subjects
from support.persistence import analytics_event, assistant_message, count, publish, until, user_message

HOUR = 3600.0
BIG = 150_000
"""More than half a page (256 KiB): no two such messages share a page."""


async def pages(nc: Client, names: Subjects, part: Any, user: str, limit: int) -> list[tuple[ExportPage, int]]:
    """Every page of ``part``, each with the size of its reply."""
    found, cursor = [], None
    while True:
        reply = await nc.request(
            names.export, query_encoder.encode(ExportRequest(user, part, cursor, limit)), timeout=5
        )
        assert not (reply.headers or {}).get(ERROR_CODE_HEADER), reply.headers
        page = export_page_decoder.decode(reply.data)
        found.append((page, len(reply.data)))
        if (cursor := page.next_cursor) is None:
            return found


async def test_conversation_pages_are_bounded_by_rows_and_bytes_and_join_up_in_order(
    database_url, db, nc, names, stack
):
    stack.persistence(DATABASE_URL=database_url, PAM_CONVERSATION_IDLE_MINUTES="30")
    t0 = time.time() - 24 * HOUR
    long = [
        user_message("u1", "a" * BIG, at=t0),
        assistant_message("u1", "b" * BIG, at=t0 + 1),
        user_message("u1", "c" * 2 * BIG, at=t0 + 2),  # more than a page: alone on its own
    ]
    short = [user_message("u1", f"short {i}", at=t0 + 2 * HOUR + i) for i in range(5)]
    await publish(nc.jetstream(), names, *long, *short, user_message("u2", "not yours", at=t0 + 1))
    await until(lambda: count(db, "messages"), lambda n: n == 9)
    empty = uuid.uuid4()  # a conversation whose messages are gone
    between = datetime.fromtimestamp(t0 + HOUR, UTC)
    await db.execute("INSERT INTO conversations VALUES ($1, 'u1', $2, $2, '')", empty, between)

    found = await pages(nc, names, "conversations", "u1", limit=2)
    joined: dict[str, list[str]] = {}
    for page, _ in found:
        for part in page.conversations:
            joined.setdefault(part.id, []).extend(m.content for m in part.messages)
    assert list(joined.values()) == [[m.content for m in long], [], [m.content for m in short]]
    assert list(joined)[1] == str(empty)
    big_pages = [sum(len(m.content) for c in page.conversations for m in c.messages) for page, _ in found[:3]]
    assert big_pages == [BIG, BIG, 2 * BIG]  # one long message a page
    assert all(len(c.messages) <= 2 for page, _ in found for c in page.conversations)  # the row bound
    assert max(size for _, size in found) < nc.max_payload
    first, *rest = [page.user for page, _ in found]
    assert first is not None and first.privacy == PrivacyRecord(True, True, None) and rest == [None] * len(rest)
    assert first.first_seen_at == datetime.fromtimestamp(t0, UTC)

    query = ExportRequest("u1", "conversations", "12.not-a-cursor")
    refused = await nc.request(names.export, query_encoder.encode(query), timeout=5)
    assert (refused.headers or {}).get(ERROR_CODE_HEADER) == "400"
    [(nobody, _)] = await pages(nc, names, "conversations", "u3", limit=2)
    assert nobody.conversations == [] and nobody.user is not None and nobody.user.first_seen_at is None


async def test_analytics_pages_hold_the_users_rows_oldest_first(database_url, db, nc, names, stack):
    stack.persistence(DATABASE_URL=database_url)
    t0 = time.time() - HOUR
    mine = [analytics_event("u1", total_ms=float(i), at=t0 + i) for i in range(5)]
    await publish(nc.jetstream(), names, *reversed(mine), analytics_event("u2", at=t0))
    await until(lambda: count(db, "analytics_events"), lambda n: n == 6)

    found = await pages(nc, names, "analytics", "u1", limit=2)
    assert [len(page.analytics) for page, _ in found] == [2, 2, 1]
    rows = [row for page, _ in found for row in page.analytics]
    assert [(r.id, r.total_ms, r.message_id) for r in rows] == [(e.event_id, e.total_ms, e.message_id) for e in mine]
