"""What reading a streamed completion costs a client, in CPU: the ``openai`` SDK against a lean reader.

Not a scenario with a target: the evidence for the orchestrator's biggest lever.  The
orchestrator reads every token through the SDK, which builds a typed object per SSE
event; a lean reader (httpx lines, msgspec structs) does the same work for a fraction.

    python -m bench.sdk_cost [--chunks 20000] [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import msgspec
import openai

from bench import results
from bench.fake_llm import FakeLLM
from bench.wsload import run

MESSAGES = [{"role": "user", "content": "hello there"}]
BODY = {"model": "bench", "messages": MESSAGES, "stream": True}


class Delta(msgspec.Struct):
    content: str | None = None


class Choice(msgspec.Struct):
    delta: Delta


class Chunk(msgspec.Struct):
    choices: list[Choice]


_chunk = msgspec.json.Decoder(Chunk)


async def sdk_stream(client: openai.AsyncOpenAI, base_url: str) -> int:
    stream = await client.chat.completions.create(model="bench", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    return sum([1 async for chunk in stream if chunk.choices and chunk.choices[0].delta.content])


async def lean_stream(client: httpx.AsyncClient, base_url: str) -> int:
    tokens = 0
    async with client.stream("POST", f"{base_url}/chat/completions", json=BODY) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                tokens += any(c.delta.content for c in _chunk.decode(line[6:]).choices)
    return tokens


async def cpu_per(read: Callable[[Any, str], Awaitable[int]], client: Any, url: str, repeats: int) -> float:
    """CPU microseconds per call of ``read``, after one warm-up call."""
    await read(client, url)
    started = time.process_time()
    for _ in range(repeats):
        await read(client, url)
    return (time.process_time() - started) / repeats * 1e6


async def measure(url: str, repeats: int) -> dict[str, float]:
    async with openai.AsyncOpenAI(api_key="sk-bench", base_url=url, max_retries=0) as sdk:
        sdk_us = await cpu_per(sdk_stream, sdk, url, repeats)
    async with httpx.AsyncClient() as lean:
        lean_us = await cpu_per(lean_stream, lean, url, repeats)
    return {"openai_sdk_us": round(sdk_us, 1), "httpx_msgspec_us": round(lean_us, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20_000, help="tokens in the long answer")
    parser.add_argument("--requests", type=int, default=300, help="one-token answers")
    args = parser.parse_args()
    with FakeLLM("sdk-cost-long", args.chunks, rate=0) as llm:
        long = run(measure(llm.url, 2))
    per_chunk = {name: round(us / args.chunks, 1) for name, us in long.items()}
    with FakeLLM("sdk-cost-short", 1, rate=0) as llm:
        per_request = run(measure(llm.url, args.requests))
    report = {"cpu_us_per_chunk": per_chunk, "cpu_us_per_request": per_request, "load": results.load_average()}
    print(json.dumps(report, indent=2))
    results.write("sdk_cost", report)


if __name__ == "__main__":
    main()
