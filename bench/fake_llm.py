"""A lean OpenAI-compatible streaming server, cheap enough to share 2 cores with the system under test.

Every request to ``/v1/chat/completions`` is answered with a stream of ``--tokens``
tokens at ``--rate`` tokens/s, the first after ``--first-delay`` seconds.  The request
body is not parsed; every byte sent is pre-rendered except two integers per token.
Each token's text carries the CLOCK_MONOTONIC time it was written, ``t=<ns>;i=<index> ``
(the first also ``a=<ns>;``, when the request arrived), so a client on the same machine
measures each token's delay exactly, whatever sits in between.

``--rate 0`` writes every token at once (to measure what a client spends per chunk).
Streams are not one timer each: a single ticker walks ``--slots`` phase buckets per token
period and writes every stream of the bucket that is due.  How late the ticker ran
(a saturated rig) is kept as a histogram, served at ``GET /_stats`` (``?reset=1`` clears it).

Run: ``python -m bench.fake_llm --port 8001 --rate 50 --tokens 500``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import urllib.request
from types import TracebackType

from bench.procs import Child, free_port, port_open, wait_ready

_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)
_EVENT = b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"bench",'
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
TOKEN = _EVENT + b'"choices":[{"index":0,"delta":{"content":"t=%d;i=%d "},"finish_reason":null}]}\n\n'
FIRST = _EVENT + b'"choices":[{"index":0,"delta":{"content":"a=%d;t=%d;i=0 "},"finish_reason":null}]}\n\n'
ROLE = _EVENT + b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
STOP = _EVENT + b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
USAGE = _EVENT + b'"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":%d,"total_tokens":%d}}\n\n'
DONE = b"data: [DONE]\n\n"
LAG_BUCKETS_MS = 1000


def chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class Stats:
    """Tokens written, and how late the ticker wrote them (1 ms histogram)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.tokens = 0
        self.lag_ms = [0] * LAG_BUCKETS_MS

    def as_dict(self) -> dict[str, object]:
        return {"requests": self.requests, "tokens": self.tokens, "lag_ms_p99": self._quantile(0.99)}

    def _quantile(self, q: float) -> int:
        wanted, seen = q * sum(self.lag_ms), 0
        for ms, count in enumerate(self.lag_ms):
            seen += count
            if count and seen >= wanted:
                return ms
        return 0


class Stream:
    __slots__ = ("transport", "index", "arrival", "server", "due")

    def __init__(self, server: Server, transport: asyncio.Transport, arrival: int) -> None:
        self.server = server
        self.transport = transport
        self.arrival = arrival
        self.index = 0
        self.due = 0

    def first(self) -> None:
        """Head, role and the first token; then the ticker takes over (or, unpaced, the rest at once)."""
        if self.transport.is_closing():
            return
        now = time.monotonic_ns()
        self.transport.write(HEAD + chunked(ROLE) + chunked(FIRST % (self.arrival, now)))
        self.index = 1
        self.server.stats.tokens += 1
        if self.server.ticker is None:
            while self.next():
                pass
        elif not self._finish_if_done():
            self.server.ticker.add(self, now)

    def next(self) -> bool:
        """Write the next token; False once the stream is over."""
        if self.transport.is_closing():
            return False
        self.transport.write(chunked(TOKEN % (time.monotonic_ns(), self.index)))
        self.index += 1
        self.server.stats.tokens += 1
        return not self._finish_if_done()

    def _finish_if_done(self) -> bool:
        tokens = self.server.tokens
        if self.index < tokens:
            return False
        tail = chunked(STOP) + chunked(USAGE % (tokens, tokens + 10)) + chunked(DONE) + b"0\r\n\r\n"
        self.transport.write(tail)
        return True


class Ticker:
    """One task for every stream: phase buckets, each visited once per token period.

    A stream sits in the bucket of the phase it started at and carries the absolute
    slot of its next token, so a late or early wake-up never writes a token twice.
    """

    def __init__(self, period_ns: int, slots: int, stats: Stats) -> None:
        self.slots = slots
        self.slot_ns = period_ns // slots
        self.buckets: list[list[Stream]] = [[] for _ in range(slots)]
        self.stats = stats

    def add(self, stream: Stream, now: int) -> None:
        stream.due = now // self.slot_ns + self.slots
        self.buckets[stream.due % self.slots].append(stream)

    async def run(self) -> None:
        slot = time.monotonic_ns() // self.slot_ns
        while True:
            slot += 1
            due = slot * self.slot_ns
            delay = due - time.monotonic_ns()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            self._visit(slot, due)

    def _visit(self, slot: int, due: int) -> None:
        index = slot % self.slots
        bucket = self.buckets[index]
        if not bucket:
            return
        keep, written = [], 0
        for stream in bucket:
            if stream.due <= slot:
                written += 1
                if not stream.next():
                    continue
                stream.due += self.slots
            keep.append(stream)
        self.buckets[index] = keep
        lag = max(0, time.monotonic_ns() - due) // 1_000_000
        self.stats.lag_ms[min(lag, LAG_BUCKETS_MS - 1)] += written


class Server:
    def __init__(self, rate: float, tokens: int, first_delay: float, slots: int) -> None:
        self.tokens = tokens
        self.first_delay = first_delay
        self.stats = Stats()
        self.ticker = Ticker(int(1e9 / rate), slots, self.stats) if rate > 0 else None

    def complete(self, transport: asyncio.Transport) -> None:
        self.stats.requests += 1
        stream = Stream(self, transport, time.monotonic_ns())
        if self.first_delay > 0:
            asyncio.get_running_loop().call_later(self.first_delay, stream.first)
        else:
            stream.first()

    def stats_response(self, transport: asyncio.Transport, reset: bool) -> None:
        body = json.dumps(self.stats.as_dict()).encode()
        if reset:
            self.stats.reset()
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
        transport.write(head + body)


class Connection(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, just enough for the openai SDK and a stats probe."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end])
            length = int(m.group(1)) if (m := _LENGTH.search(head)) else 0
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            self.route(head.split(b" ", 2)[:2])

    def route(self, request_line: list[bytes]) -> None:
        method, target = request_line
        if method == b"POST" and target.endswith(b"/chat/completions"):
            self.server.complete(self.transport)
        elif target.startswith(b"/_stats"):
            self.server.stats_response(self.transport, b"reset=1" in target)
        else:
            self.transport.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")


class FakeLLM:
    """This server as a child process of a scenario; ``url`` is its OpenAI base URL."""

    def __init__(self, tag: str, tokens: int, rate: float = 50.0, first_delay: float = 0.0) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "bench.fake_llm", "--port", str(self.port), "--tokens", str(tokens)]
        argv += ["--rate", str(rate), "--first-delay", str(first_delay)]
        self.child = Child(f"{tag}-fake-llm", argv)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int:
        return self.child.pid

    def stats(self, reset: bool = True) -> dict[str, int]:
        """Tokens written since the last reset, and the ticker's p99 lateness in ms."""
        query = "?reset=1" if reset else ""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_stats{query}", timeout=5) as response:
            return json.loads(response.read())

    def __enter__(self) -> FakeLLM:
        wait_ready(self.child.start(), lambda: port_open(self.port))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.child.stop()


async def serve(args: argparse.Namespace) -> None:
    server = Server(args.rate, args.tokens, args.first_delay, args.slots)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(lambda: Connection(server), "127.0.0.1", args.port, backlog=4096)
    print(f"listening on {listener.sockets[0].getsockname()[1]}", flush=True)
    await (server.ticker.run() if server.ticker else asyncio.Event().wait())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second per stream (0: all at once)")
    parser.add_argument("--tokens", type=int, default=500, help="tokens per answer")
    parser.add_argument("--first-delay", type=float, default=0.0, help="seconds before the first token")
    parser.add_argument("--slots", type=int, default=20, help="phase buckets per token period")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args))
    except ImportError:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
