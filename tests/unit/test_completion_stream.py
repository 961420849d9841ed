"""Reading a streamed completion without the SDK's typed stream: SSE events into msgspec chunks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx2
import openai
import pytest
from pam_orchestrator import completions
from pam_orchestrator.completions import Chunk
from pam_orchestrator.engine import Cut, EngineFailure, Usage
from pam_orchestrator.llm import _Heard
from pam_shared.protocol import UiAction


def response(*reads: bytes, fail: Exception | None = None) -> httpx2.Response:
    async def body() -> AsyncIterator[bytes]:
        for read in reads:
            yield read
        if fail is not None:
            raise fail

    return httpx2.Response(200, content=body(), request=httpx2.Request("POST", "http://model.test/v1/chat/completions"))


def read_all(resp: httpx2.Response) -> list[list[Chunk]]:
    async def gather() -> list[list[Chunk]]:
        return [found async for found in completions.events(resp)]

    return asyncio.run(gather())


def test_events_split_across_reads_and_crlf_lines_are_decoded_in_order():
    reads = read_all(
        response(
            b': keep-alive comment\r\n\r\ndata: {"choices":[{"delta":{"content":"Hi"}}]}\r\n\r\ndata: {"choi',
            b'ces":[{"delta":{"content":" there"},"finish_reason":"stop"}]}\n\n',
            b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}}\n\ndata: [DONE]\n\n',
        )
    )
    chunks = [chunk for found in reads for chunk in found]
    assert [c.choices[0].delta.content for c in chunks[:2]] == ["Hi", " there"]
    assert chunks[1].choices[0].finish_reason == "stop"
    assert chunks[2].usage is not None and (chunks[2].usage.prompt_tokens, chunks[2].usage.completion_tokens) == (7, 2)
    assert len(chunks) == 3  # [DONE] and the comment are not events


def test_a_connection_cut_mid_stream_is_the_sdks_connection_error():
    said = b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'
    cut = response(said, fail=httpx2.RemoteProtocolError("peer closed"))
    with pytest.raises(openai.APIConnectionError):
        read_all(cut)


def test_a_read_timeout_mid_stream_is_the_sdks_timeout_error():
    with pytest.raises(openai.APITimeoutError):
        read_all(response(b"", fail=httpx2.ReadTimeout("slow")))


def chunks_of(*events: bytes) -> list[Chunk]:
    return [chunk for found in read_all(response(*(b"data: " + e + b"\n\n" for e in events))) for chunk in found]


def test_tool_call_fragments_become_one_action_after_the_text():
    heard = _Heard()
    pieces = []
    for chunk in chunks_of(
        b'{"choices":[{"delta":{"content":"Going"}}]}',
        b'{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function",'
        b'"function":{"name":"navigate","arguments":""}}]}}]}',
        b'{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"page\\": "}}]}}]}',
        b'{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\\"/trips\\"}"}}]}}]}',
        b'{"choices":[{"delta":{},"finish_reason":"length"}],"usage":null}',
        b'{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":9}}',
    ):
        pieces.extend(heard.read(chunk))
    pieces.extend(heard.ending())
    assert pieces == ["Going", Usage(3, 9), [UiAction(type="navigate", target="/trips")], Cut("length")]


def test_an_error_event_fails_the_answer():
    (chunk,) = chunks_of(b'{"error":{"message":"overloaded","type":"server_error"}}')
    with pytest.raises(EngineFailure) as failure:
        _Heard().read(chunk)
    assert failure.value.kind == "api_error"
