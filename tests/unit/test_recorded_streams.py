"""Recorded provider streams (tests/data/streams) through the real reader and assembly.

Each recording is replayed as sent, with CRLF line ends and with ``data:`` lacking its space,
each split into network reads of 1 byte (inside multi-byte characters and inside ``\\r\\n``),
of 7 bytes and at every line end; the user must get the same answer every time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
from pam_orchestrator import completions
from pam_orchestrator.engine import Cut, EngineFailure, Usage
from pam_orchestrator.llm import _Heard
from pam_shared.protocol import UiAction

RECORDINGS = Path(__file__).resolve().parents[1] / "data" / "streams"


@dataclass
class Answer:
    """What the user would get: the text, the actions, the usage, the cut, or the failure."""

    text: str = ""
    actions: list[UiAction] = field(default_factory=list)
    usage: Usage | None = None
    cut: Cut | None = None
    failure: str | None = None
    calls: list[tuple[str, str]] = field(default_factory=list)


def response(reads: list[bytes]) -> httpx2.Response:
    async def body() -> AsyncIterator[bytes]:
        for read in reads:
            yield read

    return httpx2.Response(200, content=body(), request=httpx2.Request("POST", "http://model.test/v1/chat/completions"))


def replay(reads: list[bytes]) -> Answer:
    async def run() -> Answer:
        heard, got = _Heard(), Answer()
        try:
            async for found in completions.events(response(reads)):
                for chunk in found:
                    take(got, heard.read(chunk))
            take(got, heard.ending())
        except EngineFailure as failure:
            got.failure = failure.kind
        got.calls = heard.calls.assembled()
        return got

    return asyncio.run(run())


def take(got: Answer, pieces: list) -> None:
    for piece in pieces:
        if isinstance(piece, str):
            got.text += piece
        elif isinstance(piece, Usage):
            got.usage = piece
        elif isinstance(piece, Cut):
            got.cut = piece
        else:
            got.actions.extend(piece)


def every(size: int) -> Callable[[bytes], list[bytes]]:
    return lambda raw: [raw[i : i + size] for i in range(0, len(raw), size)]


SPLITS = {
    "whole": lambda raw: [raw],
    "1 byte": every(1),
    "7 bytes": every(7),
    "lines": lambda raw: raw.splitlines(keepends=True),
}
VARIANTS = {
    "as sent": lambda raw: raw,
    "crlf": lambda raw: raw.replace(b"\n", b"\r\n"),
    "data: without space": lambda raw: raw.replace(b"data: ", b"data:"),
}
NAVIGATE_TRIPS = UiAction(type="navigate", target="/trips")
FUEL = UiAction(type="create", target="expense", data={"amount": 42.5, "category": "fuel"})
GEMINI_ARGS = '{"offset":1,"limit":100,"path":"/app/skills/agent-runtime/stage-design/SKILL.md"}'

EXPECTED = {
    "openai-text-usage": Answer("**Holiday Name:** Harmony Day", usage=Usage(16, 300, 0)),
    "openai-parallel-tool-calls": Answer(
        usage=Usage(149, 60),
        calls=[
            ("GetWeatherArgs", '{"city": "Edinburgh", "country": "UK", "units": "c"}'),
            ("get_stock_price", '{"ticker": "AAPL", "exchange": "NASDAQ"}'),
        ],
    ),
    "azure-prompt-filter-annotations": Answer("Hello World", usage=Usage(15, 5, 0)),
    "azure-async-filter": Answer("Color"),
    "llamacpp-error-line": Answer(failure="api_error"),
    "gemini-tool-call-no-index": Answer(calls=[("read", GEMINI_ARGS)]),
    "ollama-parallel-tools": Answer(
        "Sure.",
        [NAVIGATE_TRIPS, FUEL],
        Usage(148, 41),
        calls=[("navigate", '{"page":"/trips"}'), ("create_expense", '{"amount":42.5,"category":"fuel"}')],
    ),
    "openrouter-comments-midstream-error": Answer("Partial", failure="server_error"),
    "deepseek-reasoning": Answer("\u201cstrawberry\u201d**.", usage=Usage(97, 106, 0)),
    "groq-x-groq-usage": Answer("Introducing light.", usage=Usage(45, 662)),
    "xai-reasoning-cached": Answer("Grok", usage=Usage(12, 2, 11)),
    "anthropic-compat-tool-call": Answer("Reading it.", calls=[("read_file", '{"path": "a.txt"}')]),
    "mistral-thinking-content-array": Answer("391", usage=Usage(28, 139, 0)),
    "vllm-continuous-usage": Answer("v", usage=Usage(15, 1)),
}


def test_every_recording_has_an_expected_answer_and_a_provenance_line():
    recorded = {path.stem for path in RECORDINGS.glob("*.sse")}
    provenance = (RECORDINGS / "PROVENANCE.md").read_text()
    assert recorded == set(EXPECTED)
    assert all(f"`{name}.sse`" in provenance for name in recorded)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name", EXPECTED)
def test_a_recorded_stream_gives_the_user_the_same_answer_however_it_is_split(name, split, variant):
    raw = VARIANTS[variant]((RECORDINGS / f"{name}.sse").read_bytes())
    assert replay(SPLITS[split](raw)) == EXPECTED[name]


def test_reasoning_is_not_shown_as_answer_text():
    raw = (RECORDINGS / "deepseek-reasoning.sse").read_bytes()
    assert b'"reasoning_content":" need"' in raw
    assert "need" not in replay([raw]).text
