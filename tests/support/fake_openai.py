"""A small OpenAI-compatible chat-completions server for tests and benchmarks.

It streams (SSE) or returns whole completions, like the real API.  What it answers
is steered by directives inside the last user message, so each test says what the
"model" should do:

    [status:500]              answer with that HTTP error
    [delay:1.5]               wait before the first token
    [gap:0.05]                wait between tokens
    [tool:navigate:{"page":"/trips"}]   call that tool (arguments are JSON)
    [say:some text]           stream exactly this text instead of the echo
    [words:500]               stream that many words ("w1 w2 ...") instead of the echo
    [cut]                     drop the connection mid-stream
    [usage:12:34]             end the stream with a usage chunk (prompt, completion tokens)
    [usage:1124:4:1024]       ... and that many of the prompt tokens read from the provider's cache
    [replay:NAME]             send tests/data/streams/NAME.sse byte for byte (a recorded provider stream)
    [nth]                     answer "Answer N", N counting the requests this server has had

Started with ``--status 429 [--retry-after 2]`` it answers every request with that error
instead, and with ``--hang`` it never answers at all: a provider that is down.

By default it streams ``Echo: <message without directives>`` word by word.  Each word
counts as one token: past the request's ``max_completion_tokens`` the answer stops with
finish reason ``length``, as the real API's does.  Every
request body it received is listed at ``GET /_requests``, so tests can check what
the orchestrator sent (system prompt, history).

It also plays the speech endpoint, ``POST /v1/audio/speech``: the audio is ``speech_wav``
of the input (a WAV of 24 kHz 16-bit mono, one 10 ms frame per character, the input's bytes
in its samples), so a test can tell which text was spoken; every speech request body is
listed at ``GET /_speech``.

Run: ``python tests/support/fake_openai.py [--port 0]``; it prints ``listening on PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import struct
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DIRECTIVE = re.compile(r"\[(status|delay|gap|tool|say|words|cut|usage|replay|nth)(?::((?:[^\[\]]|\[[^\]]*\])*))?\]")

received: list[dict] = []
aborted: list[dict] = []
"""Streams the client closed before their end (``GET /_aborted``): a stop reached the provider."""
outage: dict[str, str] = {}
"""Set from the command line: ``status`` (and ``retry_after``) or ``hang`` for every request."""
RECORDINGS = Path(__file__).resolve().parents[1] / "data" / "streams"


def directives(text: str) -> tuple[dict[str, list[str]], str]:
    found: dict[str, list[str]] = {}
    for match in DIRECTIVE.finditer(text):
        found.setdefault(match.group(1), []).append(match.group(2) or "")
    return found, DIRECTIVE.sub("", text).strip()


def last_user_text(body: dict) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


def chunk(model: str, delta: dict, finish: str | None = None) -> bytes:
    payload = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def completions(request: Request) -> Response:
    body = await request.json()
    received.append(body)
    if "hang" in outage:
        await asyncio.Event().wait()
    if "status" in outage:
        headers = {"retry-after": outage["retry_after"]} if "retry_after" in outage else None
        error = {"error": {"message": "fake outage", "type": "fake"}}
        return JSONResponse(error, status_code=int(outage["status"]), headers=headers)
    found, text = directives(last_user_text(body))
    if "status" in found:
        code = int(found["status"][0])
        return JSONResponse({"error": {"message": f"fake error {code}", "type": "fake"}}, status_code=code)
    if "delay" in found:
        await asyncio.sleep(float(found["delay"][0]))
    if "replay" in found:
        return _replay(found["replay"][0])
    reply = found["say"][0] if "say" in found else f"Echo: {text}"
    if "nth" in found:
        reply = f"Answer {len(received)}"
    if "words" in found:
        reply = " ".join(f"w{i}" for i in range(1, int(found["words"][0]) + 1))
    words = re.findall(r"\S+\s*", reply)
    limit = body.get("max_completion_tokens") or len(words)
    tools = [t.split(":", 1) for t in found.get("tool", [])]
    model = body.get("model", "fake")
    if not body.get("stream"):
        return JSONResponse(_whole(model, reply, tools))
    gap = float(found["gap"][0]) if "gap" in found else 0.0
    stream = _stream(model, words[:limit], tools, gap, "cut" in found, len(words) > limit)
    if "usage" in found:
        stream = _with_usage(stream, model, found["usage"][0])
    return StreamingResponse(_watched(stream, text), media_type="text/event-stream")


async def _watched(stream: AsyncIterator[bytes], text: str) -> AsyncIterator[bytes]:
    """The stream, noting in ``aborted`` (with when) a client that closed it before the end."""
    finished = False
    try:
        async for part in stream:
            yield part
        finished = True
    finally:
        if not finished:
            aborted.append({"message": text, "at": time.time()})


async def _stream(
    model: str, words: list[str], tools: list[list[str]], gap: float, cut: bool, too_long: bool
) -> AsyncIterator[bytes]:
    yield chunk(model, {"role": "assistant", "content": ""})
    for i, word in enumerate(words):
        if gap and i:
            await asyncio.sleep(gap)
        if cut and i == len(words) // 2:
            raise ConnectionResetError("cut by test directive")
        yield chunk(model, {"content": word})
    for index, (name, arguments) in enumerate(tools):
        call = {
            "index": index,
            "id": f"call_{uuid.uuid4().hex[:8]}",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        yield chunk(model, {"tool_calls": [call]})
        half = len(arguments) // 2  # arguments arrive in pieces, as from the real API
        for piece in (arguments[:half], arguments[half:]):
            yield chunk(model, {"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk(model, {}, "length" if too_long else "tool_calls" if tools else "stop")
    yield b"data: [DONE]\n\n"


def _replay(name: str) -> Response:
    """A recorded stream as its provider sent it, one event per write."""
    path = RECORDINGS / f"{name}.sse"
    if not re.fullmatch(r"[a-z0-9-]+", name) or not path.is_file():
        return JSONResponse({"error": {"message": f"no recording {name}", "type": "fake"}}, status_code=400)
    events = re.findall(rb".*?(?:\r?\n\r?\n|$)", path.read_bytes(), re.DOTALL)
    return StreamingResponse(iter([e for e in events if e]), media_type="text/event-stream")


def _whole(model: str, reply: str, tools: list[list[str]]) -> dict:
    message: dict = {"role": "assistant", "content": reply}
    if tools:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
            for i, (n, a) in enumerate(tools)
        ]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }


async def _with_usage(stream: AsyncIterator[bytes], model: str, spec: str) -> AsyncIterator[bytes]:
    """The usage chunk (no choices) just before ``[DONE]``, as ``stream_options.include_usage`` asks."""
    prompt, completion, *cached = (int(n) for n in spec.split(":"))
    usage: dict = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached[0]}
    payload = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model, "choices": [], "usage": usage}
    async for part in stream:
        if part == b"data: [DONE]\n\n":
            yield b"data: " + json.dumps(payload).encode() + b"\n\n"
        yield part


async def requests_seen(request: Request) -> Response:
    return JSONResponse(received)


async def aborted_streams(request: Request) -> Response:
    return JSONResponse(aborted)


spoken: list[dict] = []
SPEECH_RATE = 24_000


def speech_wav(text: str) -> bytes:
    """What the fake says for ``text``: a WAV of one 10 ms frame per character, text inside."""
    data = text.encode().ljust(len(text) * SPEECH_RATE // 100 * 2, b"\0")
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, SPEECH_RATE, SPEECH_RATE * 2, 2, 16)
    return header + b"data" + struct.pack("<I", len(data)) + data


async def speech(request: Request) -> Response:
    body = await request.json()
    spoken.append(body)
    if outage.get("status"):
        return JSONResponse({"error": {"message": "outage"}}, status_code=int(outage["status"]))
    if body.get("response_format") != "wav":
        return JSONResponse({"error": {"message": "the fake speaks wav only"}}, status_code=400)
    return Response(speech_wav(body["input"]), media_type="audio/wav")


async def speech_seen(request: Request) -> Response:
    return JSONResponse(spoken)


app = Starlette(
    routes=[
        Route("/v1/chat/completions", completions, methods=["POST"]),
        Route("/_requests", requests_seen),
        Route("/_aborted", aborted_streams),
        Route("/v1/audio/speech", speech, methods=["POST"]),
        Route("/_speech", speech_seen),
    ]
)


class _Server(uvicorn.Server):
    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        port = self.servers[0].sockets[0].getsockname()[1]
        print(f"listening on {port}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--status", type=int, help="answer every request with this HTTP error")
    parser.add_argument("--retry-after", help="with --status: the Retry-After header to send")
    parser.add_argument("--hang", action="store_true", help="never answer a request")
    args = parser.parse_args()
    if args.status:
        outage["status"] = str(args.status)
    if args.retry_after:
        outage["retry_after"] = args.retry_after
    if args.hang:
        outage["hang"] = "yes"
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=1)
    _Server(config).run()


if __name__ == "__main__":
    main()
