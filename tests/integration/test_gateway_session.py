"""A session's frame dispatch in process: real NATS behind it, a recording socket in front."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from pam_gateway.chats import ChatPath
from pam_gateway.consent import PrivacyBook
from pam_gateway.dialect import SEED
from pam_gateway.idempotency import ChatKeys
from pam_gateway.inbox import Inbox, KeptFrames
from pam_gateway.outbox import Outbox
from pam_gateway.quota import UserQuota
from pam_gateway.relay import Relay
from pam_gateway.session import Session
from pam_gateway.spent import SpentBook
from pam_shared.auth import Identity, authenticate
from pam_shared.background import Tasks
from pam_shared.internal import chat_request_decoder
from pam_shared.journal import Journal
from pam_shared.privacy import Privacy
from pam_shared.settings import BudgetSettings, load_gateway_settings
from pam_shared.spool import Spool
from pam_shared.subjects import Subjects
from support.sockets import RecordingSocket


@pytest.fixture
async def path(nc: Client, names: Subjects, tmp_path: Path) -> AsyncIterator[ChatPath]:
    tasks = Tasks()
    kept = KeptFrames(nc.jetstream(), names)
    parts = ChatPath(
        UserQuota(nc.jetstream(), names.rate_bucket, 100),
        SpentBook(nc.jetstream(), names.budget_bucket, BudgetSettings(0, 0)),
        ChatKeys(nc.jetstream(), names.idempotency_bucket, 60),
        PrivacyBook(nc.jetstream(), names, Privacy()),
        Journal(nc, names, Spool(tmp_path, "test"), 100),
        Relay(nc, names, "gw-test", 5, kept, tasks),
    )
    for part in (parts.quota, parts.keys, parts.journal, parts.relay):
        await part.start()
    await parts.book.start(tasks, 1)
    await parts.spent.start(tasks, 1)
    yield parts
    tasks.closing()
    await parts.book.close()
    await parts.relay.stop()
    await parts.quota.stop()
    await parts.journal.close()
    await tasks.stop()


def session_for(
    identity: Identity, path: ChatPath, nc: Client, names: Subjects, **env: str
) -> tuple[Session, RecordingSocket]:
    socket = RecordingSocket()
    settings = load_gateway_settings({"PAM_NATS_NAMESPACE": names.namespace, **env})
    outbox = Outbox(socket, settings.send_queue_bytes)  # a recording socket in place of a WebSocket
    inbox = Inbox(identity.user_id, outbox, SEED, KeptFrames(nc.jetstream(), names))
    return Session(identity, "127.0.0.9", outbox, SEED, inbox, path, settings), socket


async def requests(nc: Client, names: Subjects) -> asyncio.Queue[Msg]:
    """The chat requests published on ``nc``, as they arrive."""
    seen: asyncio.Queue[Msg] = asyncio.Queue()
    await nc.subscribe(names.chat_request, cb=seen.put)
    await nc.flush()
    return seen


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", "invalid_json"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "chat"}', "invalid_message"),
        ('{"type": "chat", "message": "hi", "user_id": "someone-else"}', "user_mismatch"),
    ],
)
async def test_a_frame_that_cannot_be_served_gets_its_error(nc, names, path, text, code):
    session, socket = session_for(Identity("u-1", demo=False), path, nc, names)
    await session.handle_text(text)
    assert (await socket.next())["code"] == code and session.errors == 1


async def test_a_ping_is_answered_and_a_burst_past_the_budget_is_refused(nc, names, path):
    session, socket = session_for(Identity("u-1", demo=False), path, nc, names, PAM_RATE_BURST="2")
    for _ in range(3):
        await session.handle_text('{"type": "ping"}')
    kinds = [(await socket.next())["type"] for _ in range(2)]
    refused = await socket.next()
    assert kinds == ["pong", "pong"] and refused["code"] == "rate_limited"


async def test_a_demo_chat_on_a_users_path_is_asked_as_the_demo_identity(nc, names, path):
    seen = await requests(nc, names)
    demo = await authenticate("demo-token", "6f1c-user", load_gateway_settings({}).auth)
    session, _ = session_for(demo, path, nc, names)
    await session.handle_text(json.dumps({"type": "chat", "message": "hi", "user_id": "6f1c-user"}))
    request = chat_request_decoder.decode((await asyncio.wait_for(seen.get(), 5)).data)
    assert request.demo and request.user_id == demo.user_id != "6f1c-user"
