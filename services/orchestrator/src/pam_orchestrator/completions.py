"""The streamed chat completion on the wire: its chunk shape (msgspec) and a lean SSE reader.

The ``openai`` SDK builds a typed object per SSE event by reflection (about 9x the CPU of
decoding the same bytes into these structs, ``bench/sdk_cost.py``), so the engine takes the
SDK's raw streaming response and reads it here: split ``data:`` lines, decode each event
with one reused decoder.  Only the fields the engine uses are declared; the rest are skipped.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator

import httpx2
import msgspec
import openai


class FunctionDelta(msgspec.Struct, gc=False):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(msgspec.Struct, gc=False):
    """A fragment of one tool call; ``index`` says which call it continues."""

    index: int
    id: str | None = None
    function: FunctionDelta | None = None


class Delta(msgspec.Struct, gc=False):
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class Choice(msgspec.Struct, gc=False):
    delta: Delta
    finish_reason: str | None = None


class PromptTokensDetails(msgspec.Struct, gc=False):
    cached_tokens: int | None = None


class ChunkUsage(msgspec.Struct, gc=False):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: PromptTokensDetails | None = None


class StreamError(msgspec.Struct, gc=False):
    message: str | None = None


class Chunk(msgspec.Struct, gc=False):
    """One ``data:`` event.  An ``error`` event is how a provider fails after the stream began."""

    choices: list[Choice] = []
    usage: ChunkUsage | None = None
    error: StreamError | None = None


_decoder = msgspec.json.Decoder(Chunk)
DONE = b"[DONE]"


async def events(response: httpx2.Response) -> AsyncGenerator[list[Chunk]]:
    """The chunks of each network read, in order; transport failures as the SDK's error types.

    Reads to the end of the body (after ``[DONE]`` there is nothing more), so the connection
    goes back to the pool instead of being closed."""
    pending = b""
    try:
        async for data in response.aiter_bytes():
            *lines, pending = (pending + data).split(b"\n")
            if found := _decoded(lines):
                yield found
    except httpx2.TimeoutException as exc:
        raise openai.APITimeoutError(request=response.request) from exc
    except (httpx2.RequestError, ssl.SSLError) as exc:
        raise openai.APIConnectionError(request=response.request) from exc


def _decoded(lines: list[bytes]) -> list[Chunk]:
    """The events among ``lines`` (comments, ``event:`` lines and ``[DONE]`` are not events)."""
    found = []
    for line in lines:
        if line.startswith(b"data:"):
            body = line[5:]
            if len(body) > len(DONE) + 4 or body.strip() != DONE:
                found.append(_decoder.decode(body))
    return found
