"""A TCP proxy a test owns, to make a real server unreachable for a while and then reachable again,
or to hold back what the server sends and then deliver it in one go.

It runs its own event loop in a thread, so it keeps forwarding while the test blocks
(``Stack`` waits for a service's ready line synchronously).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlparse

from support.processes import free_port

T = TypeVar("T")
CHUNK = 65536


class TcpProxy:
    def __init__(self, target_url: str) -> None:
        parsed = urlparse(target_url)
        self.target = (parsed.hostname or "127.0.0.1", parsed.port or 5432)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._holding = _Holding()

    def url_through(self, url: str) -> str:
        """``url`` with its host and port replaced by this proxy's."""
        parsed = urlparse(url)
        user = parsed.netloc.rpartition("@")[0]
        return parsed._replace(netloc=f"{user}@127.0.0.1:{self.port}" if user else f"127.0.0.1:{self.port}").geturl()

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def open(self) -> None:
        """Accept connections again, on the same port."""
        self._call(self._open())

    def cut(self) -> None:
        """Refuse new connections and break every open one, as a dead server would."""
        self._call(self._cut())

    def hold_after(self, *triggers: bytes) -> None:
        """Once a client has sent ``triggers`` in this order, hold back everything the server sends
        it (the answer to the last first) until ``let_go``: messages that would come in separate
        reads then come in one, as they do to a process too busy to read its socket."""
        self._call(self._holding.arm(list(triggers)))

    def wait_held(self, needle: bytes, timeout: float = 5.0) -> None:
        """Block until the bytes held back contain ``needle`` (call it in a thread)."""
        self._holding.wait_for(needle, timeout)

    def let_go(self) -> None:
        """Deliver what was held back, in one write, and forward as before."""
        self._call(self._holding.release())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=5)

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _shutdown(self) -> None:
        await self._cut()
        forwarding = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in forwarding:
            task.cancel()
        await asyncio.gather(*forwarding, return_exceptions=True)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update((client_writer, upstream_writer))
        holding = self._holding
        await asyncio.gather(
            _pipe(client_reader, upstream_writer, holding.watch), _pipe(upstream_reader, client_writer, holding.keep)
        )
        self._writers.difference_update((client_writer, upstream_writer))


class _Holding:
    """What the server sent while held back; everything here runs on the proxy's loop but ``wait_for``."""

    def __init__(self) -> None:
        self.triggers: list[bytes] = []
        self.seen = b""
        self.held: bytearray | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.changed = threading.Condition()

    async def arm(self, triggers: list[bytes]) -> None:
        self.triggers, self.seen = triggers, b""

    def watch(self, data: bytes, writer: asyncio.StreamWriter) -> bool:
        """Client to server: start holding as the last trigger passes (before the server can answer it)."""
        if not self.triggers:
            return False
        self.seen += data
        while self.triggers and (at := self.seen.find(self.triggers[0])) >= 0:
            self.seen = self.seen[at + len(self.triggers.pop(0)) :]
        if not self.triggers:
            with self.changed:
                self.held = bytearray()
        return False

    def keep(self, data: bytes, writer: asyncio.StreamWriter) -> bool:
        """Server to client: held back (True) while holding."""
        with self.changed:
            if self.held is None:
                return False
            self.held += data
            self.writer = writer
            self.changed.notify_all()
            return True

    def wait_for(self, needle: bytes, timeout: float) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: self.held is not None and needle in self.held, timeout):
                raise AssertionError(f"{needle!r} not held back within {timeout} s")

    async def release(self) -> None:
        with self.changed:
            held, writer, self.held, self.writer = self.held, self.writer, None, None
        if held and writer is not None:
            writer.write(bytes(held))
            await writer.drain()


Tap = Callable[[bytes, asyncio.StreamWriter], bool]
"""Sees each chunk on its way; True: it was kept back, not forwarded."""


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tap: Tap) -> None:
    try:
        while data := await reader.read(CHUNK):
            if tap(data, writer):
                continue
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()
