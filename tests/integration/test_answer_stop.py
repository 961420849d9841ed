"""Stopping an answer against real NATS, at the moments a stop used to be lost: an answer
acknowledged as ``stopped`` ends at once, its ``chat_response`` marked ``truncated: "stopped"``.

The orchestrator runs here, reaching NATS through a proxy that holds back what the server sends
it from one of its requests on (reading the user's recent turns, keeping the ``ui_actions``
frame), and then delivers it in one read: the answer to that request, and the stop right behind
it.  ``asyncio.wait_for`` (every nats-py request) then returns the answer and swallows the stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from pam_orchestrator import turns
from pam_orchestrator.service import Orchestrator
from pam_shared import subjects
from pam_shared.internal import CancelRequest, ChatRequest, cancel_encoder, cancel_reply_decoder, chat_request_encoder
from pam_shared.protocol import ChatContext
from pam_shared.settings import load_orchestrator_settings
from pam_shared.subjects import Subjects
from support.tcp_proxy import TcpProxy


@pytest.fixture
async def far(
    nats_url: str, service_env: dict[str, str], llm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Orchestrator, TcpProxy]]:
    """An orchestrator whose connection goes through a proxy that can hold back what the server sends it."""
    monkeypatch.setattr(turns, "READ_TIMEOUT_SECONDS", 5.0)  # held back, the read must not time out
    with TcpProxy(nats_url) as proxy:
        env = {**service_env, **llm_env, "NATS_URL": proxy.url_through(nats_url), "PAM_CHUNK_WINDOW_MS": "0"}
        orchestrator = Orchestrator(load_orchestrator_settings(env))
        await orchestrator.start()
        yield orchestrator, proxy
        await orchestrator.drain()


class Answer:
    """One chat's frames as its gateway gets them, and its end."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.ended = asyncio.Event()

    async def on_msg(self, msg: Msg) -> None:
        self.frames += [msgspec.json.decode(line) for line in msg.data.split(b"\n") if line]
        if (msg.headers or {}).get(subjects.REPLY_KIND_HEADER) == subjects.REPLY_END:
            self.ended.set()

    def seen(self) -> list[tuple[str, str | None, str | None]]:
        return [(f["type"], f.get("message"), f.get("truncated")) for f in self.frames if f["type"] != "chat_chunk"]

    def said(self) -> str:
        return "".join(f["delta"] for f in self.frames if f["type"] == "chat_chunk")


async def ask(nc: Client, names: Subjects, message: str, demo: bool) -> tuple[str, Answer]:
    """Send a chat as a gateway does; its message id and its answer as it comes."""
    message_id, answer = uuid.uuid4().hex, Answer()
    inbox = nc.new_inbox()
    await nc.subscribe(inbox, cb=answer.on_msg)
    chat = ChatRequest(uuid.uuid4().hex, "s1", "ann", demo, message, ChatContext(), time.time(), message_id)
    await nc.publish(names.chat_request, chat_request_encoder.encode(chat), reply=inbox)
    return message_id, answer


async def ended(answer: Answer) -> None:
    """Wait for the answer's end (``wait_for`` on our own event: it swallows nothing of the answer's)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(answer.ended.wait(), 5)
    assert answer.ended.is_set(), f"acknowledged as stopped, the answer never ended: {answer.seen()}"


async def stop_held_with(proxy: TcpProxy, nc: Client, names: Subjects, message_id: str) -> str:
    """Once the answer to the held request is held back, stop the chat; deliver both in one read."""
    asked = asyncio.create_task(nc.request(names.chat_cancel, cancel_encoder.encode(CancelRequest("ann", message_id))))
    await asyncio.to_thread(proxy.wait_held, message_id.encode())
    proxy.let_go()
    return cancel_reply_decoder.decode((await asked).data).status


async def test_a_stop_read_with_the_recent_turns_ends_the_answer_before_the_model_is_asked(
    nc: Client, names: Subjects, far: tuple[Orchestrator, TcpProxy], fake_openai: str
):
    _, proxy = far
    proxy.hold_after(f"PUB $JS.API.STREAM.MSG.GET.KV_{names.turns_bucket} ".encode())
    message_id, answer = await ask(nc, names, "[say:the whole answer, never stopped] hello", demo=False)
    await asyncio.to_thread(proxy.wait_held, b"stream_msg_get_response")
    assert await stop_held_with(proxy, nc, names, message_id) == "stopped"
    await ended(answer)
    assert answer.seen() == [("chat_response", "", "stopped")] and answer.said() == ""
    async with httpx.AsyncClient() as http:
        assert (await http.get(fake_openai.removesuffix("/v1") + "/_requests")).json() == []  # never asked


async def test_a_stop_read_with_the_keeping_of_the_ui_actions_ends_the_answer_stopped(
    nc: Client, names: Subjects, far: tuple[Orchestrator, TcpProxy]
):
    _, proxy = far
    proxy.hold_after(f"PUB {names.frames('ann')} ".encode())
    message_id, answer = await ask(nc, names, "I spent $20 on fuel", demo=True)
    await asyncio.to_thread(proxy.wait_held, f'"stream":"{names.frames_stream}"'.encode())
    assert await stop_held_with(proxy, nc, names, message_id) == "stopped"
    await ended(answer)
    said = answer.said()
    assert said.startswith("💰") and answer.seen() == [("ui_actions", None, None), ("chat_response", said, "stopped")]
