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
from prometheus_client import REGISTRY


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
    assert failure.value.kind == "server_error"


# The events below are constructed (not recorded) in shapes providers document or bugs quote.


def heard_from(*reads: bytes) -> tuple[list, str | None]:
    """The pieces the engine passes on, and the failure's kind if the answer failed."""
    heard, pieces = _Heard(), []
    try:
        for found in read_all(response(*reads)):
            for chunk in found:
                pieces.extend(heard.read(chunk))
        pieces.extend(heard.ending())
    except EngineFailure as failure:
        return pieces, failure.kind
    return pieces, None


def skipped() -> float:
    return REGISTRY.get_sample_value("pam_orchestrator_llm_chunks_skipped_total") or 0.0


def test_events_of_unknown_shape_are_skipped_counted_and_logged_once(caplog):
    before = skipped()
    pieces, failure = heard_from(
        b'data: {"choices":[{"delta":{"content":"Half"}}]}\n\ndata:\n\ndata: \r\n\r\n',  # empty keep-alives
        b'data: {"choices":[{"delta":{"content":{"odd":1}}}]}\n\n',  # content of no known shape
        b'data: {"choices":[{"delta":{"content":"way"\n\n',  # cut-off JSON
        b'data: {"choices":"none"}\n\n',
        b'data: {"choices":[{"delta":{"content":" there."},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n',
    )
    assert (pieces, failure) == (["Half", " there."], None)
    assert skipped() - before == 3
    lines = [r for r in caplog.records if r.name == "pam.orchestrator.completions"]
    assert len(lines) == 1 and "skipped 3" in lines[0].getMessage()


def test_a_json_error_body_without_sse_is_the_error_it_is():
    body = b'{\n  "error": {\n    "message": "Rate limit reached for gpt-4o",\n    "code": 429\n  }\n}'
    assert heard_from(body[:20], body[20:]) == ([], "rate_limited")


def test_an_error_event_with_an_event_name_fails_the_answer():
    reads = (
        b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n',
        b"event: error\r\n",
        b'data: {"message":"busy"}\r\n\r\n',
    )
    assert heard_from(*reads) == (["Hi"], "api_error")
    assert heard_from(b"event: error\ndata: upstream overloaded\n\n")[1] == "api_error"


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (b'{"error":"Internal error"}', "api_error"),
        (b'{"object":"error","message":"len > max_model_len","type":"BadRequestError","code":400}', "api_error"),
        (b'{"error":{"message":"Rate limit exceeded","code":429}}', "rate_limited"),
        (b'{"error":{"code":"server_error","message":"Provider disconnected"}}', "server_error"),
    ],
)
def test_every_shape_of_error_event_fails_the_answer_with_its_kind(event, kind):
    assert heard_from(b"data: " + event + b"\n\n")[1] == kind


def test_a_bare_error_line_is_the_server_error_it_reports():
    line = b'error: {"code":500,"message":"Invalid input batch.","type":"server_error"}\n\ndata: [DONE]\n\n'
    assert heard_from(line) == ([], "server_error")


def test_a_content_filter_finish_ends_the_answer_with_what_was_said():
    said = b'data: {"choices":[{"delta":{"content":"Here is"}}]}\n\n'
    stop = b'data: {"choices":[{"delta":{},"finish_reason":"content_filter"}]}\n\ndata: [DONE]\n\n'
    assert heard_from(said, stop) == (["Here is", Cut("content_filter")], None)
    assert heard_from(stop) == ([], "content_filter")


def calls_of(*deltas: bytes) -> list[tuple[str, str]]:
    heard = _Heard()
    for chunk in chunks_of(*(b'{"choices":[{"delta":{"tool_calls":[' + d + b"]}}]}" for d in deltas)):
        heard.read(chunk)
    return heard.calls.assembled()


def test_parallel_tool_calls_by_index_interleaved_stay_apart():
    assert calls_of(
        b'{"index":0,"id":"a","function":{"name":"navigate","arguments":""}}',
        b'{"index":1,"id":"b","function":{"name":"update_budget","arguments":"{\\"cat"}}',
        b'{"index":0,"function":{"arguments":"{\\"page\\":\\"/fuel\\"}"}}',
        b'{"index":1,"function":{"arguments":"egory\\":\\"food\\",\\"amount\\":90}"}}',
    ) == [("navigate", '{"page":"/fuel"}'), ("update_budget", '{"category":"food","amount":90}')]


def test_tool_calls_without_index_go_by_id_else_by_order_of_arrival():
    assert calls_of(
        b'{"id":"","function":{"name":"navigate","arguments":"{\\"page\\":"}}',
        b'{"function":{"arguments":"\\"/fuel\\"}"}}',
        b'{"id":"","function":{"name":"navigate","arguments":"{\\"page\\":\\"/budget\\"}"}}',
        b'{"id":"g3","function":{"name":"create_expense","arguments":"{\\"amount\\":"}}',
        b'{"id":"g3","function":{"arguments":"5}"}}',
    ) == [("navigate", '{"page":"/fuel"}'), ("navigate", '{"page":"/budget"}'), ("create_expense", '{"amount":5}')]


def test_a_reused_index_with_a_new_id_is_a_new_call_and_object_arguments_are_read():
    assert calls_of(
        b'{"index":0,"id":"call_1","function":{"name":"navigate","arguments":{"page":"/trips"}}}',
        b'{"index":0,"id":"call_2","function":{"name":"navigate","arguments":{"page":"/fuel"}}}',
    ) == [("navigate", '{"page":"/trips"}'), ("navigate", '{"page":"/fuel"}')]


def test_noise_before_a_plain_json_error_is_skipped_and_the_error_still_fails_the_answer():
    before = skipped()
    noise = b"<html>upstream said something</html>\n"
    assert heard_from(noise, b'{"error":{"message":"Service Unavailable","code":503}}\n') == ([], "server_error")
    assert skipped() - before == 1
