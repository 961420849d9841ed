"""The load generator's sockets: many WebSocket clients in one cheap asyncio process.

Clients use the ``websockets`` library with compression and keep-alive pings off, so
they spend nothing the server does not ask for; frames are sent pre-encoded.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Coroutine
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect

T = TypeVar("T")
OPEN_TIMEOUT = 30.0


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run the load generator on uvloop when it is there (cheaper per frame)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def raise_open_files_limit() -> int:
    """Lift the soft limit on open files to the hard one (children inherit it); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def open_socket(url: str, greeted: bool) -> ClientConnection:
    """Connect; when ``greeted``, also read the server's first frame (the gateway's ``connection``)."""
    ws = await connect(url, compression=None, ping_interval=None, max_size=None, open_timeout=OPEN_TIMEOUT)
    if greeted:
        first = await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT)
        if '"connected"' not in first:
            await ws.close()
            raise RuntimeError(f"refused: {first[:200]}")
    return ws


async def open_sockets(urls: list[str], greeted: bool, concurrency: int = 100) -> list[ClientConnection]:
    """Open every socket, at most ``concurrency`` handshakes at a time; fail if any fails."""
    gate = asyncio.Semaphore(concurrency)

    async def one(url: str) -> ClientConnection:
        async with gate:
            return await open_socket(url, greeted)

    return list(await asyncio.gather(*(one(url) for url in urls)))


async def close_sockets(sockets: list[ClientConnection], concurrency: int = 500) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(ws: ClientConnection) -> None:
        async with gate:
            await ws.close()

    await asyncio.gather(*(one(ws) for ws in sockets), return_exceptions=True)
