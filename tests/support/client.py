"""A WebSocket client for tests: connect, send frames, read typed frames until an answer ends."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

RECV_TIMEOUT = 15.0
ANSWER_ENDS = ("chat_response", "error")


class PamClient:
    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws

    @classmethod
    async def connect(cls, url: str, **options: Any) -> PamClient:
        """``options`` go to ``websockets.connect`` (``additional_headers``, ``local_addr`` ...)."""
        return cls(await websockets.connect(url, max_size=None, compression=None, **options))

    async def recv(self, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def chat(self, message: str, user_id: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        """Send one chat and return every frame up to and including the one that ends it."""
        frame = {"type": "chat", "message": message, **fields}
        if user_id is not None:
            frame["user_id"] = user_id
        await self.send(frame)
        return await self.answer()

    async def answer(self, timeout: float = RECV_TIMEOUT) -> list[dict[str, Any]]:
        frames = []
        while True:
            frame = await self.recv(timeout)
            frames.append(frame)
            if frame["type"] in ANSWER_ENDS:
                return frames

    async def close(self) -> None:
        await self.ws.close()

    async def __aenter__(self) -> PamClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def connected(url: str, **options: Any) -> PamClient:
    """A socket past its handshake: the ``connection`` frame has been read."""
    client = await PamClient.connect(url, **options)
    hello = await client.recv()
    assert hello["type"] == "connection" and hello["status"] == "connected", hello
    return client


async def refused(url: str, **options: Any) -> tuple[dict[str, Any], int]:
    """The frame a refused socket gets, and the code it is then closed with."""
    client = await PamClient.connect(url, **options)
    frame = await client.recv()
    try:
        await client.recv()
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None, "closed without a close frame"
        return frame, closed.rcvd.code
    raise AssertionError(f"the socket stayed open after {frame}")


def chat_frame(message: str, user_id: str, **extra: Any) -> dict[str, Any]:
    """The seed's OutgoingMessage, with a full context."""
    return {
        "type": "chat",
        "message": message,
        "user_id": user_id,
        "context": {
            "region": "Queensland",
            "current_page": "/expenses",
            "session_data": {
                "recent_intents": ["fuel", "expense"],
                "intent_counts": {"fuel": 3, "expense": 1},
                "last_activity": "2026-11-25T10:00:00.000Z",
                "session_start": "2026-11-25T09:00:00.000Z",
            },
        },
        **extra,
    }
