"""The demo token is public: a demo session on a user's path is nobody, and reaches nothing of theirs."""

from __future__ import annotations

import json
from typing import Any

import nats
from pam_shared import delivery
from pam_shared.subjects import Subjects
from support.client import PamClient, chat_frame, connected
from support.tokens import token

VICTIM = "6f1c2d3e-victim"


async def frames_before_pong(client: PamClient) -> list[dict[str, Any]]:
    """Everything the server sent this socket before it answered a ping (frames are in order)."""
    await client.send({"type": "ping"})
    frames = []
    while (frame := await client.recv())["type"] != "pong":
        frames.append(frame)
    return frames


async def test_a_demo_socket_on_a_users_path_sees_none_of_their_frames_or_pushes(stack, nats_url, namespace):
    stack.orchestrator()
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/{VICTIM}?token={token(VICTIM)}")) as victim:
        answer = await victim.chat("I spent $42 on diesel", VICTIM)
        assert answer[-1]["type"] == "chat_response" and isinstance(answer[-1]["event_id"], int)

        async with await PamClient.connect(gateway.ws_url(f"/ws/{VICTIM}?token=demo-token")) as intruder:
            hello = await intruder.recv()
            assert hello["mode"] == "demo" and hello["user_id"] != VICTIM
            await intruder.send({"type": "resume", "last_event_id": 0})
            assert await frames_before_pong(intruder) == []

            nc = await nats.connect(nats_url)
            try:
                pushed = {"type": "ui_actions", "actions": [{"type": "navigate", "target": "/secret", "data": None}]}
                await delivery.push(nc, Subjects(namespace), VICTIM, json.dumps(pushed).encode())
            finally:
                await nc.close()
            assert (await victim.recv())["actions"][0]["target"] == "/secret"
            assert await frames_before_pong(intruder) == []


async def test_demo_chats_are_answered_without_spending_the_users_quota(stack):
    stack.orchestrator()
    gateway = stack.gateway(PAM_USER_MESSAGES_PER_MINUTE="3")
    async with await connected(gateway.ws_url(f"/ws/{VICTIM}?token=demo-token")) as demo:
        for _ in range(3):  # the seed's frontend puts its path id in every chat, demo sessions too
            await demo.send(chat_frame("I spent $5 on coffee", VICTIM))
            assert (await demo.answer())[-1]["type"] == "chat_response"

    async with await connected(gateway.ws_url(f"/ws/{VICTIM}?token={token(VICTIM)}")) as victim:
        for _ in range(3):
            assert (await victim.chat("what did I spend?", VICTIM))[-1]["type"] == "chat_response"


async def test_a_token_cannot_name_a_demo_identity(stack):
    gateway = stack.gateway()
    async with await PamClient.connect(gateway.ws_url("/api/v1/pam/ws?token=demo-token")) as demo:
        demo_id = (await demo.recv())["user_id"]
    async with await PamClient.connect(gateway.ws_url(f"/api/v1/pam/ws?token={token(demo_id)}")) as forged:
        refusal = await forged.recv()
    assert refusal["type"] == "error" and refusal["code"] == "token_invalid"
