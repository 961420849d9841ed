"""Helpers for persistence tests: events to publish, publishing them, polling PostgreSQL.

Nothing here sleeps to let things happen: ``until`` polls a probe against a deadline
and fails with the last value it saw.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from nats.js import JetStreamContext
from pam_shared.events import SUBJECT_KIND, AnalyticsEvent, Answer, AssistantMessage, Event, UserMessage, event_encoder
from pam_shared.subjects import Subjects

T = TypeVar("T")

POLL_SECONDS = 0.05


async def until(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float = 10.0) -> T:
    """Call ``probe`` until ``done(value)``; fail with the last value once ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout} s")
        await asyncio.sleep(POLL_SECONDS)


def user_message(user_id: str = "u1", content: str = "hello", at: float | None = None, **fields: Any) -> UserMessage:
    return UserMessage(
        event_id=uuid.uuid4().hex,
        session_id=fields.pop("session_id", "s1"),
        user_id=user_id,
        content=content,
        created_at=time.time() if at is None else at,
        **fields,
    )


def assistant_message(
    user_id: str = "u1", content: str = "hi", at: float | None = None, intent: str = "general", **fields: Any
) -> AssistantMessage:
    message_id = uuid.uuid4().hex
    return AssistantMessage(
        event_id=message_id,
        session_id=fields.pop("session_id", "s1"),
        user_id=user_id,
        message_id=message_id,
        content=content,
        intent=intent,
        created_at=time.time() if at is None else at,
        **fields,
    )


def analytics_event(
    user_id: str = "u1", intent: str = "general", total_ms: float = 100.0, at: float | None = None, **fields: Any
) -> AnalyticsEvent:
    return AnalyticsEvent(
        event_id=uuid.uuid4().hex,
        session_id="s1",
        user_id=user_id,
        message_id=uuid.uuid4().hex,
        intent=intent,
        engine="offline",
        model=None,
        orchestrator="test",
        total_ms=total_ms,
        created_at=time.time() if at is None else at,
        **fields,
    )


def answer(user_id: str = "u1", content: str = "hi", at: float | None = None, **fields: Any) -> Answer:
    return Answer(
        event_id=uuid.uuid4().hex,
        session_id=fields.pop("session_id", "s1"),
        user_id=user_id,
        content=content,
        intent=fields.pop("intent", "general"),
        created_at=time.time() if at is None else at,
        engine="offline",
        model=None,
        orchestrator="test",
        total_ms=fields.pop("total_ms", 100.0),
        **fields,
    )


async def publish(js: JetStreamContext, names: Subjects, *events: Event, dedupe: bool = True) -> None:
    """Publish in order, with the event id as ``Nats-Msg-Id`` (``dedupe=False``: none, so a repeat is stored)."""
    for event in events:
        headers = {"Nats-Msg-Id": event.event_id} if dedupe else None
        await js.publish(
            names.event(SUBJECT_KIND[type(event)], event.user_id), event_encoder.encode(event), headers=headers
        )


async def count(db: asyncpg.Connection, table: str, where: str = "true", *args: object) -> int:
    return await db.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args)


async def consumer_settled(js: JetStreamContext, names: Subjects) -> bool:
    """Nothing waiting for the persistence consumer and nothing delivered but unacked."""
    info = await js.consumer_info(names.events_stream, names.persistence_consumer)
    return info.num_pending == 0 and info.num_ack_pending == 0
