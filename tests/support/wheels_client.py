"""The shipped WHEELS WINS client (``pamService.ts``), as far as the wire goes, written for tests.

It sends exactly the frames that client sends and takes an answer exactly the way it does:
the first frame, after the chat went out, with ``error`` or ``type: "error"``, or with any of
``response``/``message``/``content``; pings from the server are answered, anything else is
ignored.  Its REST fallback re-sends the same chat to ``/api/v1/pam-simple/chat``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import websockets

MESSAGE_TIMEOUT = 30.0


def context(page: str = "pam_chat") -> dict[str, Any]:
    """What ``handleSendMessage`` and ``enhanceMessageWithLocation`` put in a chat's context."""
    return {
        "current_page": page,
        "conversation_history": [{"role": "user", "content": "hi", "timestamp": "2026-12-01T05:00:00.000Z"}],
        "user_location": {
            "lat": -16.92,
            "lng": 145.77,
            "latitude": -16.92,
            "longitude": 145.77,
            "city": "Cairns",
            "region": "Queensland",
            "country": "Australia",
            "timezone": "Australia/Brisbane",
            "accuracy": 20,
            "timestamp": int(time.time() * 1000),
            "source": "gps",
        },
        "userLocation": {"latitude": -16.92, "longitude": 145.77, "city": "Cairns"},
        "environment": "staging",
        "timestamp": int(time.time() * 1000),
    }


def chat_body(user_id: str, message: str) -> dict[str, Any]:
    return {"type": "chat", "user_id": user_id, "message": message, "context": context()}


class ShippedClient:
    def __init__(self, ws: websockets.ClientConnection, user_id: str) -> None:
        self.ws = ws
        self.user_id = user_id
        self.seen: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, base: str, user_id: str, token: str, **options: Any) -> ShippedClient:
        ws = await websockets.connect(f"{base}/api/v1/pam/ws/{user_id}?token={token}", compression=None, **options)
        return cls(ws, user_id)

    async def frame(self, timeout: float = MESSAGE_TIMEOUT) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.seen.append(frame)
        return frame

    async def ping(self) -> None:
        await self.ws.send(json.dumps({"type": "ping", "timestamp": int(time.time() * 1000)}))

    async def send_chat(self, message: str) -> None:
        await self.ws.send(json.dumps(chat_body(self.user_id, message)))

    async def answer(self, timeout: float = MESSAGE_TIMEOUT) -> dict[str, Any]:
        """``sendMessageViaWebSocket``'s message handler: the frame it resolves with."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.frame(deadline - time.monotonic())
            if frame.get("type") == "ping":
                await self.ws.send(json.dumps({"type": "pong", "timestamp": frame.get("timestamp")}))
            elif frame.get("error") or frame.get("type") == "error":
                return frame
            elif frame.get("response") or frame.get("message") or frame.get("content"):
                return frame

    async def ask(self, message: str) -> dict[str, Any]:
        await self.send_chat(message)
        return await self.answer()

    async def close(self) -> None:
        await self.ws.close()


async def rest_chat(base_http: str, user_id: str, token: str, message: str) -> httpx.Response:
    """``sendMessageViaRest``: the same chat, POSTed with the token as a Bearer header."""
    async with httpx.AsyncClient(timeout=120) as http:
        return await http.post(
            f"{base_http}/api/v1/pam-simple/chat",
            json=chat_body(user_id, message),
            headers={"Authorization": f"Bearer {token}"},
        )
