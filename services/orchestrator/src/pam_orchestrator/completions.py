"""The streamed chat completion on the wire: its chunk shape (msgspec) and a lean SSE reader.

The ``openai`` SDK builds a typed object per SSE event by reflection (about 9x the CPU of
decoding the same bytes into these structs, ``bench/sdk_cost.py``), so the engine takes the
SDK's raw streaming response and reads it here: split lines, decode each ``data:`` event
with one reused decoder.  Only the fields the engine uses are declared; the rest are skipped.

OpenAI-compatible servers bend the format (``tests/data/streams`` holds recordings): CRLF line
ends, ``data:`` without a space, comment lines, chunks whose choice has no ``delta`` (Azure's
content-filter annotations), ``content`` as a list of parts (Mistral), and failures as a
``data: {"error": ...}`` event, an ``event: error`` event, a bare ``error: {...}`` line
(llama.cpp) or a JSON body that is not SSE at all.  Failures become chunks with ``error`` set;
an event the reader cannot make sense of is skipped and counted, never the end of the answer.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncGenerator
from typing import Any

import httpx2
import msgspec
import openai

from pam_orchestrator import metrics

log = logging.getLogger("pam.orchestrator.completions")


class FunctionDelta(msgspec.Struct, gc=False):
    name: str | None = None
    arguments: str | dict[str, Any] | None = None


class ToolCallDelta(msgspec.Struct, gc=False):
    """A fragment of one tool call; ``index`` (when the provider sends one) says which call it continues."""

    index: int | None = None
    id: str | None = None
    function: FunctionDelta | None = None


class ContentPart(msgspec.Struct, gc=False):
    """One part of a ``content`` list; only ``text`` parts are answer text (``thinking`` is not)."""

    type: str = ""
    text: str | None = None


class Delta(msgspec.Struct, gc=False):
    # Reasoning deltas (reasoning_content, reasoning) are not declared: they are not the answer.
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCallDelta] | None = None


class Choice(msgspec.Struct, gc=False):
    delta: Delta | None = None
    finish_reason: str | None = None


class PromptTokensDetails(msgspec.Struct, gc=False):
    cached_tokens: int | None = None


class ChunkUsage(msgspec.Struct, gc=False):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: PromptTokensDetails | None = None
    cached_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.cached_tokens is None and self.prompt_tokens_details is not None:
            self.cached_tokens = self.prompt_tokens_details.cached_tokens


class StreamError(msgspec.Struct, gc=False):
    message: str | None = None
    code: int | str | None = None
    type: str | None = None


class Chunk(msgspec.Struct, gc=False):
    """One event.  ``error`` (or vLLM's older top-level ``message`` without choices) is a failure."""

    choices: list[Choice] = []
    usage: ChunkUsage | None = None
    error: StreamError | str | None = None
    message: str | None = None
    code: int | str | None = None


_decoder = msgspec.json.Decoder(Chunk)
_error_decoder = msgspec.json.Decoder(StreamError)
DONE = b"[DONE]"
STRAY_LIMIT = 65_536
"""Bytes of non-SSE text kept while it might still become one JSON body (an error sent without SSE)."""


def stream_error(chunk: Chunk) -> StreamError | None:
    """The failure a chunk carries, whichever way the provider put it."""
    if isinstance(chunk.error, StreamError):
        return chunk.error
    if chunk.error is not None:
        return StreamError(message=chunk.error)
    if chunk.message is not None and not chunk.choices:
        return StreamError(message=chunk.message, code=chunk.code)
    return None


def failure_kind(error: StreamError) -> str:
    """``rate_limited``, ``server_error`` or ``api_error``, from the provider's code and type."""
    code = str(error.code).lower()
    words = {code, (error.type or "").lower()}
    status = int(code) if code.isdigit() else 0
    if status == 429 or words & {"rate_limit_exceeded", "rate_limit_error", "rate_limited"}:
        return "rate_limited"
    if status >= 500 or words & {"server_error", "overloaded_error", "internal_server_error"}:
        return "server_error"
    return "api_error"


class _Lines:
    """The SSE fields of one response, across network reads; what it skipped, for one log line."""

    def __init__(self) -> None:
        self.pending = b""
        self.error_event = False
        self.stray = b""
        self.skipped = 0
        self.first_skip = ""

    def feed(self, data: bytes) -> list[Chunk]:
        *lines, self.pending = (self.pending + data).split(b"\n")
        found: list[Chunk] = []
        for line in lines:
            if line.startswith(b"data:"):
                body = line[5:]
                if len(body) > len(DONE) + 4 or body.strip() not in (DONE, b""):  # nor an empty keep-alive
                    self._data(body, found)
            elif not line or line == b"\r":
                self.error_event = False  # a blank line ends the event
            else:
                self._field(line, found)
        return found

    def end(self) -> list[Chunk]:
        """What is left when the body ends: a last line without a line end, a non-SSE body."""
        found = self.feed(b"\n") if self.pending.strip() else []
        if self.stray.strip():
            self.skip("text that is neither SSE nor JSON")
        return found

    def _data(self, body: bytes, found: list[Chunk]) -> None:
        try:
            chunk = _decoder.decode(body)
        except msgspec.DecodeError as exc:
            if self.error_event:
                found.append(Chunk(error=StreamError(message=_text(body))))
            else:
                self.skip(str(exc))
            return
        if self.error_event and stream_error(chunk) is None:
            chunk = Chunk(error=StreamError(message=chunk.message, code=chunk.code))
        found.append(chunk)

    def _field(self, line: bytes, found: list[Chunk]) -> None:
        name, _, value = line.partition(b":")
        if line.startswith(b":") or name in (b"id", b"retry"):
            return
        if name == b"event":
            self.error_event = value.strip() == b"error"
        elif name == b"error":
            found.append(Chunk(error=_error_of(value)))
        else:
            self._stray(line, found)

    def _stray(self, line: bytes, found: list[Chunk]) -> None:
        """A line outside SSE: part of a plain JSON body (an error sent without SSE), or noise."""
        for text in (line, self.stray + line):
            try:
                chunk = _decoder.decode(text)
            except msgspec.DecodeError:
                continue
            if text is line and self.stray.strip():
                self.skip("text that is neither SSE nor JSON")
            self.stray = b""
            found.append(chunk)
            return
        self.stray += line + b"\n"
        if len(self.stray) > STRAY_LIMIT:
            self.skip("text that is neither SSE nor JSON")
            self.stray = b""

    def skip(self, why: str) -> None:
        metrics.chunks_skipped.inc()
        self.skipped += 1
        self.first_skip = self.first_skip or why


def _error_of(value: bytes) -> StreamError:
    try:
        return _error_decoder.decode(value)
    except msgspec.DecodeError:
        return StreamError(message=_text(value))


def _text(value: bytes) -> str:
    return value.strip().decode("utf-8", "replace")[:500]


async def events(response: httpx2.Response) -> AsyncGenerator[list[Chunk]]:
    """The chunks of each network read, in order; transport failures as the SDK's error types.

    Reads to the end of the body (after ``[DONE]`` there is nothing more), so the connection
    goes back to the pool instead of being closed."""
    lines = _Lines()
    try:
        async for data in response.aiter_bytes():
            if found := lines.feed(data):
                yield found
        if found := lines.end():
            yield found
    except httpx2.TimeoutException as exc:
        raise openai.APITimeoutError(request=response.request) from exc
    except (httpx2.RequestError, ssl.SSLError) as exc:
        raise openai.APIConnectionError(request=response.request) from exc
    finally:
        if lines.skipped:
            log.warning("skipped %d unreadable events of the stream; first: %s", lines.skipped, lines.first_skip)
