"""A WebSocket stand-in for in-process gateway tests: it records what the gateway sends."""

from __future__ import annotations

import asyncio
import json
from typing import Any


class RecordingSocket:
    """What ``Outbox`` writes to (``send_text``/``close``), kept in order for the test to read."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closed_with: int | None = None

    async def send_text(self, text: str) -> None:
        self.frames.put_nowait(json.loads(text))

    async def close(self, code: int = 1000) -> None:
        self.closed_with = code

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.frames.get(), timeout)
