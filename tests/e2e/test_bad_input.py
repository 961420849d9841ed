"""Every bad frame gets a clear error with a stable code, and the socket keeps working."""

from __future__ import annotations

import json

import pytest
import websockets
from support.client import PamClient, chat_frame

LIMIT = 2048

BAD_FRAMES = [
    ("{not json", "invalid_json"),
    ('{"type": "teleport", "where": "mars"}', "unknown_type"),
    ('{"message": "no type at all"}', "invalid_message"),
    ('{"type": "chat"}', "invalid_message"),
    ('{"type": "chat", "message": 42, "user_id": "u"}', "invalid_message"),
    ('{"type": "chat", "message": "hi", "context": {"region": ["not", "a", "string"]}}', "invalid_message"),
    ('{"type": "chat", "message": ""}', "invalid_message"),
    ('{"type": "chat", "message": "hi", "user_id": "someone-else"}', "user_mismatch"),
    ('["a", "list"]', "invalid_message"),
    (json.dumps({"type": "chat", "message": "x" * (LIMIT + 10)}), "message_too_large"),
]


@pytest.fixture
def gateway(stack):
    stack.orchestrator()
    return stack.gateway(PAM_MAX_MESSAGE_BYTES=str(LIMIT))


async def test_each_bad_frame_is_answered_and_the_next_chat_still_works(gateway):
    async with await PamClient.connect(gateway.ws_url("/ws/u?token=demo-token")) as client:
        await client.recv()
        for frame, code in BAD_FRAMES:
            await client.send(frame)
            reply = await client.recv()
            assert reply["type"] == "error" and reply["code"] == code, (frame[:60], reply)
            assert reply["message"] and "Traceback" not in json.dumps(reply)
        frames = await client.chat("still there?", "u")
        assert frames[-1]["type"] == "chat_response"


async def test_binary_frames_are_refused_with_an_error(gateway):
    async with await PamClient.connect(gateway.ws_url("/ws/u?token=demo-token")) as client:
        await client.recv()
        await client.ws.send(b'{"type": "ping"}')
        assert (await client.recv())["code"] == "binary_unsupported"
        await client.send({"type": "ping"})
        assert (await client.recv())["type"] == "pong"


async def test_the_size_limit_counts_bytes_not_characters(gateway):
    emoji = "🚐" * (LIMIT // 4 + 1)  # under the limit in characters, over it in UTF-8 bytes
    async with await PamClient.connect(gateway.ws_url("/ws/u?token=demo-token")) as client:
        await client.recv()
        await client.send({"type": "chat", "message": emoji})
        assert (await client.recv())["code"] == "message_too_large"


async def test_a_grossly_oversized_frame_closes_with_1009(gateway):
    async with await PamClient.connect(gateway.ws_url("/ws/u?token=demo-token")) as client:
        await client.recv()
        await client.send("x" * (LIMIT * 8))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.rcvd.code == 1009


async def test_ping_gets_pong(gateway):
    async with await PamClient.connect(gateway.ws_url("/api/v1/pam/ws?token=demo-token")) as client:
        await client.recv()
        await client.send({"type": "ping"})
        pong = await client.recv()
        assert pong["type"] == "pong" and pong["timestamp"].endswith("Z")


async def test_replies_name_the_message_they_answer(gateway):
    async with await PamClient.connect(gateway.ws_url("/ws/u?token=demo-token")) as client:
        await client.recv()
        first = await client.chat("first", "u", message_id="a")
        second = await client.chat("second", "u", message_id="b")
        await client.send(chat_frame("third", "someone-else", message_id="c"))
        refused = await client.recv()
    assert {f["reply_to"] for f in first} == {"a"} and {f["reply_to"] for f in second} == {"b"}
    assert refused["code"] == "user_mismatch" and refused["reply_to"] == "c"
