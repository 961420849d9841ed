"""The leanest client of a streamed completion: httpx lines, one reused msgspec decoder per event.

The floor any reader of the stream can reach in Python (the orchestrator reads the same
way behind the ``openai`` SDK's request), so the streaming rig and ``sdk_cost`` measure
against it rather than against the SDK's typed stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec

MESSAGES = [{"role": "user", "content": "hello there"}]
BODY = {"model": "bench", "messages": MESSAGES, "stream": True}
LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
"""The ``openai`` SDK's own pool limits (httpx's default of 100 connections would queue the rig)."""
TIMEOUT = httpx.Timeout(60.0, connect=5.0)


class Delta(msgspec.Struct):
    content: str | None = None


class Choice(msgspec.Struct):
    delta: Delta


class Chunk(msgspec.Struct):
    choices: list[Choice]


_chunk = msgspec.json.Decoder(Chunk)


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(limits=LIMITS, timeout=TIMEOUT)


async def contents(http: httpx.AsyncClient, base_url: str) -> AsyncIterator[str]:
    """The text of each chunk that carries some; an HTTP error status raises ``httpx.HTTPStatusError``."""
    async with http.stream("POST", f"{base_url}/chat/completions", json=BODY) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                for choice in _chunk.decode(line[6:]).choices:
                    if choice.delta.content:
                        yield choice.delta.content
