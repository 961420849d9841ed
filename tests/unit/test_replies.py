"""One answer's reply stream: merged deltas, and the last chunk riding with a lasting frame."""

from __future__ import annotations

import asyncio
import json

import pytest
from pam_orchestrator.replies import ReplyStream
from pam_shared import subjects
from pam_shared.protocol import UiAction


class Wire:
    """What the stream publishes, and the frames it keeps."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, dict[str, str]]] = []
        self.kept: list[bytes] = []

    async def respond(self, data: bytes, headers: dict[str, str] | None) -> None:
        self.sent.append((data, headers or {}))

    async def keep(self, frame: bytes) -> dict[str, str]:
        self.kept.append(frame)
        return {subjects.EVENT_ID_HEADER: str(len(self.kept))}


def frames(data: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in data.split(b"\n")]


def deltas(wire: Wire) -> list[object]:
    return [f["delta"] for data, _ in wire.sent for f in frames(data)]


async def test_the_first_delta_goes_at_once_and_the_rest_ride_with_the_end():
    wire = Wire()
    replies = ReplyStream(wire.respond, "m1", wire.keep, window=60)
    for delta in ("Hel", "lo ", "there"):
        await replies.chunk(delta)
    await replies.finish("Hello there", "general")

    (first, _), (last, headers) = wire.sent
    assert [f["delta"] for f in frames(first)] == ["Hel"]
    chunk, end = frames(last)
    assert (chunk["type"], chunk["delta"], chunk["seq"]) == ("chat_chunk", "lo there", 1)
    assert (end["type"], end["message"]) == ("chat_response", "Hello there")
    assert headers[subjects.LEADING_CHUNK_HEADER] == "1" and headers[subjects.REPLY_KIND_HEADER] == "end"
    assert [json.loads(k)["type"] for k in wire.kept] == ["chat_response"]  # the chunk is not kept


async def test_nothing_waiting_means_the_end_comes_alone():
    wire = Wire()
    replies = ReplyStream(wire.respond, "m1", wire.keep, window=0)
    await replies.chunk("Hi")
    await replies.ui_actions([UiAction(type="navigate", target="/wins")])
    await replies.fail("llm_error")

    assert [[f["type"] for f in frames(data)] for data, _ in wire.sent] == [["chat_chunk"], ["ui_actions"], ["error"]]
    assert all(subjects.LEADING_CHUNK_HEADER not in headers for _, headers in wire.sent)


@pytest.mark.parametrize("window_ms", [10, 15, 25, 40])
async def test_a_chunk_after_a_quiet_period_goes_out_at_once_whatever_the_window(window_ms):
    window = window_ms / 1000
    wire = Wire()
    replies = ReplyStream(wire.respond, "m1", wire.keep, window=window)
    await replies.chunk("first ")
    assert deltas(wire) == ["first "]  # the first token is never held back
    await replies.chunk("second ")
    assert deltas(wire) == ["first "]  # within the window of the last chunk sent: it waits
    await asyncio.sleep(2 * window)
    assert deltas(wire) == ["first ", "second "]  # and goes when the window has passed

    await asyncio.sleep(1.5 * window)  # a pause in the model's stream, longer than the window
    await replies.chunk("after the pause")
    assert deltas(wire) == ["first ", "second ", "after the pause"]  # sent before chunk() returned


class GatedWire(Wire):
    """A wire whose sends of merged chunks wait until ``gate`` opens (a full NATS buffer, say);
    a frame counts as sent when its send is done, and each send notes whether it ran in a task."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.in_task: list[bool] = []
        self.failing = False

    async def respond(self, data: bytes, headers: dict[str, str] | None) -> None:
        self.in_task.append(asyncio.current_task() is not None)
        if self.failing:
            raise ConnectionError("the connection is gone")
        if frames(data)[0].get("seq", 0) > 0 and not self.gate.is_set():
            await self.gate.wait()
        await super().respond(data, headers)


async def merged(wire: Wire, window: float = 0.01) -> ReplyStream:
    """A stream whose second delta waits for the window and is sent by its timer."""
    replies = ReplyStream(wire.respond, "m1", wire.keep, window=window)
    await replies.chunk("first ")
    await replies.chunk("second ")
    await asyncio.sleep(2 * window)
    return replies


async def test_a_merged_chunk_is_sent_by_its_timer_in_the_timers_turn_without_a_task():
    wire = GatedWire()
    wire.gate.set()
    await merged(wire)

    assert deltas(wire) == ["first ", "second "]
    assert wire.in_task == [True, False]  # the first from the answer's task, the merged one from the timer


async def test_frames_after_a_merged_chunk_whose_send_waits_go_out_after_it():
    wire = GatedWire()
    replies = await merged(wire)
    assert deltas(wire) == ["first "]  # its send waits for the gate
    later = asyncio.create_task(replies.chunk("third "))  # sent now or by a timer: after "second " either way
    await asyncio.sleep(0.02)
    ending = asyncio.create_task(replies.finish("first second third ", "general"))
    await asyncio.sleep(0.01)
    assert deltas(wire) == ["first "] and not ending.done()

    wire.gate.set()
    await asyncio.wait_for(asyncio.gather(later, ending), 2)
    sent = [f for data, _ in wire.sent for f in frames(data)]
    assert [f.get("delta") for f in sent if f["type"] == "chat_chunk"] == ["first ", "second ", "third "]
    assert sent[-1]["type"] == "chat_response"


async def test_a_merged_chunk_that_cannot_be_sent_is_logged_and_the_answer_goes_on(caplog):
    wire = GatedWire()
    wire.gate.set()
    replies = ReplyStream(wire.respond, "m1", wire.keep, window=0.01)
    await replies.chunk("first ")
    await replies.chunk("second ")
    wire.failing = True
    await asyncio.sleep(0.02)
    assert "could not send a merged chunk" in caplog.text

    wire.failing = False
    await replies.finish("first second ", "general")
    assert [[f["type"] for f in frames(data)] for data, _ in wire.sent] == [["chat_chunk"], ["chat_response"]]
