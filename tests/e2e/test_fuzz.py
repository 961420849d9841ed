"""Generated frames thrown at a live gateway: it never crashes, never leaks an exception,
and always still answers a valid chat afterwards."""

from __future__ import annotations

import asyncio
import json
import uuid

import msgspec
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pam_shared.errors import ERRORS
from pam_shared.protocol import server_decoder

DOCUMENTED_CLOSES = {1007, 1009}  # invalid UTF-8, frame far too large
LEAKS = ("Traceback", "Exception", "Error:", 'File "', "site-packages")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["chat", "ping", "auth", "resume", "CHAT", "", "unknown"])},
    optional={
        "message": json_values,
        "user_id": json_values,
        "context": json_values
        | st.fixed_dictionaries({}, optional={"region": json_values, "session_data": json_values}),
        "message_id": json_values,
        "token": json_values,
    },
)
frames = st.one_of(
    frame_like.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=64),
    st.integers(min_value=1, max_value=5000).map(lambda depth: '{"type":"ping","x":' + "[" * depth + "]" * depth + "}"),
)


class Prober:
    """One socket, reopened only after a documented close, that checks every reply."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: websockets.ClientConnection | None = None

    async def throw(self, frame: str | bytes) -> None:
        if self.ws is None:
            self.ws = await websockets.connect(self.url, compression=None)
            await self.expect(lambda f: f["type"] == "connection")
        try:
            await self.ws.send(frame)
            marker = uuid.uuid4().hex
            await self.ws.send(json.dumps({"type": "chat", "message": "still there?", "message_id": marker}))
            await self.expect(lambda f: f["type"] == "chat_response" and f["reply_to"] == marker)
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code in DOCUMENTED_CLOSES, closed
            self.ws = None

    async def expect(self, done) -> None:
        assert self.ws is not None
        while True:
            text = await asyncio.wait_for(self.ws.recv(), 10)
            assert not any(leak in text for leak in LEAKS), text
            server_decoder.decode(text)  # every reply is a well-formed server frame
            frame = msgspec.json.decode(text)
            if frame["type"] == "error":
                assert frame["code"] in ERRORS
            if done(frame):
                return


def test_generated_frames_never_break_the_gateway(stack):
    stack.orchestrator()
    unlimited = {"PAM_RATE_BURST": "100000", "PAM_RATE_PER_SECOND": "100000", "PAM_USER_MESSAGES_PER_MINUTE": "100000"}
    gateway = stack.gateway(**unlimited, PAM_MAX_MESSAGE_BYTES="4096")
    runner = asyncio.Runner()
    prober = Prober(gateway.ws_url("/ws/fuzz?token=demo-token"))

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(frames)
    def check(frame: str | bytes) -> None:
        runner.run(prober.throw(frame))

    try:
        check()
        runner.run(prober.throw(b"\xff\xfe not utf-8"))
    finally:
        runner.close()
    assert gateway.running
    assert "Traceback" not in "\n".join(gateway.lines)
