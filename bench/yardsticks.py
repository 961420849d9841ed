"""The bare minimum each scenario is compared with, started by the benchmark itself.

- ``relay``: a Starlette WebSocket endpoint that forwards each frame as a NATS request
  and sends the reply back (no auth, no validation, no persistence).  Its second route,
  ``/ws/stream``, publishes with a per-socket inbox and forwards every reply message:
  the bare cost of an answer streamed as many frames as the project's.  ``/ws/paced``
  does the same for answers paced like a model's (scenario 2's per-frame yardstick).
- ``responder``: the bare NATS responder behind it; it echoes the payload, on
  ``<subject>.stream`` answers with STREAMED_FRAMES pre-encoded frames, and on
  ``<subject>.paced`` with ``--tokens`` ``chat_chunk`` frames at ``--rate`` per second, one
  token each (its text ``t=<CLOCK_MONOTONIC ns>;i=<index>``, as ``bench.fake_llm`` writes
  them), then a ``chat_response`` with the whole text.
- ``echo``: a bare Starlette WebSocket echo, the floor of per-socket memory.

All run under uvicorn with compression off and the ``BENCH_UVICORN_*`` options, like
the gateway they stand beside.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType

import nats
import uvicorn
from nats.aio.client import Client
from nats.aio.msg import Msg
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from bench.procs import Child, free_port, port_open, wait_ready, wait_until
from bench.project import NATS_URL
from bench.server_options import ServerOptions

REQUEST_TIMEOUT = 10.0
STREAMED_FRAMES = 28
"""What the offline engine answers to the benchmark's chat: 27 ``chat_chunk`` frames, then ``chat_response``."""


def _streamed_answer() -> list[bytes]:
    words = [f"word{i} " for i in range(STREAMED_FRAMES - 1)]
    head = '{"type":"chat_chunk","message_id":"0123456789abcdef0123456789abcdef","seq":'
    chunks = [f'{head}{i},"delta":"{word}","reply_to":null}}'.encode() for i, word in enumerate(words)]
    final = (
        '{"type":"chat_response","message":"' + "".join(words) + '","timestamp":"2026-01-01T00:00:00.000Z",'
        '"message_id":"0123456789abcdef0123456789abcdef","intent":"general","reply_to":null}'
    )
    return [*chunks, final.encode()]


PACED_CHUNK = (
    b'{"type":"chat_chunk","message_id":"0123456789abcdef0123456789abcdef","seq":%d,"delta":"%s","reply_to":null}'
)
PACED_END = (
    b'{"type":"chat_response","message":"%s","timestamp":"2026-01-01T00:00:00.000Z",'
    b'"message_id":"0123456789abcdef0123456789abcdef","intent":"general","reply_to":null}'
)


async def paced_answer(nc: Client, reply: str, tokens: int, rate: float) -> None:
    """One answer paced like a model's: token ``i`` is due ``i / rate`` seconds after the first."""
    start, parts = time.monotonic(), []
    for i in range(tokens):
        if (wait := start + i / rate - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        parts.append(b"t=%d;i=%d " % (time.monotonic_ns(), i))
        await nc.publish(reply, PACED_CHUNK % (i, parts[-1]))
    await nc.publish(reply, PACED_END % b"".join(parts))


def relay_app(nats_url: str, subject: str) -> Starlette:
    connection: dict[str, Client] = {}

    async def relay(websocket: WebSocket) -> None:
        await websocket.accept()
        nc = connection["nc"]
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            reply = await nc.request(subject, message["text"].encode(), timeout=REQUEST_TIMEOUT)
            await websocket.send_text(reply.data.decode())

    def streamed(kind: str) -> Callable[[WebSocket], Awaitable[None]]:
        async def stream(websocket: WebSocket) -> None:
            await websocket.accept()
            nc = connection["nc"]

            async def forward(msg: Msg) -> None:
                await websocket.send_text(msg.data.decode())

            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox, cb=forward)
            try:
                while (message := await websocket.receive())["type"] != "websocket.disconnect":
                    await nc.publish(f"{subject}.{kind}", message["text"].encode(), reply=inbox)
            finally:
                await sub.unsubscribe()

        return stream

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        connection["nc"] = await nats.connect(nats_url)
        try:
            yield
        finally:
            await connection["nc"].drain()

    routes = [
        WebSocketRoute("/ws", relay),
        WebSocketRoute("/ws/stream", streamed("stream")),
        WebSocketRoute("/ws/paced", streamed("paced")),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def echo_app() -> Starlette:
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            await websocket.send_text(message["text"])

    return Starlette(routes=[WebSocketRoute("/ws", echo)])


async def respond_forever(nats_url: str, subject: str, tokens: int, rate: float) -> None:
    nc = await nats.connect(nats_url)

    frames = _streamed_answer()
    answering: set[asyncio.Task[None]] = set()

    async def answer(msg: Msg) -> None:
        await msg.respond(msg.data)

    async def answer_streamed(msg: Msg) -> None:
        for frame in frames:
            await nc.publish(msg.reply, frame)

    async def answer_paced(msg: Msg) -> None:
        task = asyncio.create_task(paced_answer(nc, msg.reply, tokens, rate))  # callbacks run one at a time
        answering.add(task)
        task.add_done_callback(answering.discard)

    await nc.subscribe(subject, queue="bench-responders", cb=answer)
    await nc.subscribe(f"{subject}.stream", queue="bench-responders", cb=answer_streamed)
    await nc.subscribe(f"{subject}.paced", queue="bench-responders", cb=answer_paced)
    await nc.flush()
    print("responder ready", flush=True)
    await asyncio.Event().wait()


def serve(app: Starlette, port: int) -> None:
    options = ServerOptions.from_env()
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", ws_per_message_deflate=False, **options.uvicorn_kwargs()
    )


class Yardstick:
    """A yardstick's processes for one scenario: ``relay`` (with its responder) or ``echo``."""

    def __init__(
        self, role: str, tag: str, options: ServerOptions | None = None, paced: tuple[int, float] = (500, 50.0)
    ) -> None:
        """``paced``: tokens and tokens/s of the answers on ``/ws/paced``."""
        options = options or ServerOptions()
        self.port = free_port()
        subject = f"bench.yardstick.{uuid.uuid4().hex[:10]}"
        common = [sys.executable, "-m", "bench.yardsticks", "--nats", NATS_URL, "--subject", subject]
        env = {**options.to_env(), "PYTHONUNBUFFERED": "1"}
        self.server = Child(f"{tag}-yardstick-{role}", [*common, role, "--port", str(self.port)], env)
        pacing = ["--tokens", str(paced[0]), "--rate", str(paced[1])]
        responder = [*common, "responder", *pacing]
        self.responder = Child(f"{tag}-yardstick-responder", responder, env) if role == "relay" else None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def stream_url(self) -> str:
        """The relay's streamed route: STREAMED_FRAMES frames per message."""
        return f"ws://127.0.0.1:{self.port}/ws/stream"

    @property
    def paced_url(self) -> str:
        """The relay's paced route: answers streamed one token per frame at the responder's rate."""
        return f"ws://127.0.0.1:{self.port}/ws/paced"

    def __enter__(self) -> Yardstick:
        try:
            if self.responder is not None:
                responder = self.responder.start()
                wait_until(lambda: "responder ready" in responder.log_path.read_text(), responder.name)
            wait_ready(self.server.start(), lambda: port_open(self.port))
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        self.server.stop()
        if self.responder is not None:
            self.responder.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("relay", "responder", "echo"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--subject", default="bench.yardstick")
    parser.add_argument("--tokens", type=int, default=500, help="tokens of each paced answer")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens/s of each paced answer")
    args = parser.parse_args()
    if args.role == "relay":
        serve(relay_app(args.nats, args.subject), args.port)
    elif args.role == "echo":
        serve(echo_app(), args.port)
    else:
        asyncio.run(respond_forever(args.nats, args.subject, args.tokens, args.rate))


if __name__ == "__main__":
    main()
