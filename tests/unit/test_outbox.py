"""A socket's send queue: frames written at once while the client reads, queued in order while it does not."""

from __future__ import annotations

import asyncio
from typing import Any

from pam_gateway.outbox import Outbox
from pam_shared.protocol import TRY_AGAIN_LATER
from support.sockets import RecordingSocket


class SlowSocket(RecordingSocket):
    """A client whose buffer may be full: while ``reading`` is clear, every send waits for it."""

    def __init__(self, fail_after_wait: bool = False) -> None:
        super().__init__()
        self.reading = asyncio.Event()
        self.reading.set()
        self.fail_after_wait = fail_after_wait
        self.failed = asyncio.Event()
        self.closing = asyncio.Event()

    async def send_text(self, text: str) -> None:
        if not self.reading.is_set():
            await self.reading.wait()
            if self.fail_after_wait:
                self.failed.set()
                raise OSError("the peer went away")
        await super().send_text(text)

    async def close(self, code: int = 1000) -> None:
        await super().close(code)
        self.closing.set()


class GoneSocket(RecordingSocket):
    async def send_text(self, text: str) -> None:
        raise OSError("the peer went away")


def frame(n: int) -> str:
    return f'{{"type":"chat_chunk","seq":{n}}}'


async def received(socket: RecordingSocket, count: int) -> list[Any]:
    return [(await socket.next())["seq"] for _ in range(count)]


async def test_a_frame_is_on_the_socket_before_put_returns():
    socket = RecordingSocket()
    outbox = Outbox(socket, limit_bytes=1 << 20)  # type: ignore[arg-type]
    for n in range(3):
        outbox.put(frame(n))
        assert socket.frames.qsize() == n + 1  # no task and no loop turn in between
    assert await received(socket, 3) == [0, 1, 2]


async def test_frames_put_while_a_send_waits_follow_it_in_order():
    socket = SlowSocket()
    outbox = Outbox(socket, limit_bytes=1 << 20)  # type: ignore[arg-type]
    socket.reading.clear()
    for n in range(5):
        outbox.put(frame(n))
    await asyncio.sleep(0)  # the writer runs, and still waits
    assert socket.frames.empty()

    socket.reading.set()
    assert await received(socket, 5) == [0, 1, 2, 3, 4]
    outbox.put(frame(5))  # the wait is over: written at once again
    assert socket.frames.get_nowait() == {"type": "chat_chunk", "seq": 5}


async def test_a_client_that_stops_reading_is_closed_with_1013_past_the_limit():
    socket = SlowSocket()
    outbox = Outbox(socket, limit_bytes=100)  # type: ignore[arg-type]
    socket.reading.clear()
    for n in range(10):  # 29 bytes each, the first in flight: the fourth one queued passes 100
        outbox.put(frame(n))
    await asyncio.wait_for(socket.closing.wait(), 5)
    assert socket.closed_with == TRY_AGAIN_LATER
    socket.reading.set()
    await asyncio.sleep(0)
    assert socket.frames.empty()  # the waiting send was cancelled, the queue dropped


async def test_a_peer_gone_mid_send_closes_the_outbox():
    gone = Outbox(GoneSocket(), limit_bytes=1 << 20)  # type: ignore[arg-type]
    gone.put(frame(0))
    assert gone.closed

    socket = SlowSocket(fail_after_wait=True)
    outbox = Outbox(socket, limit_bytes=1 << 20)  # type: ignore[arg-type]
    socket.reading.clear()
    outbox.put(frame(0))
    outbox.put(frame(1))
    socket.reading.set()
    await asyncio.wait_for(socket.failed.wait(), 5)  # the writer's send raises right after this
    assert outbox.closed and socket.frames.empty()
    outbox.put(frame(2))
    assert socket.frames.empty()
