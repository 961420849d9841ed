"""What reading a streamed completion costs a client, in CPU: the ``openai`` SDK against a lean reader.

Not a scenario with a target: the evidence for the orchestrator's stream reader.  The
SDK's typed stream builds an object per SSE event by reflection; a lean reader (httpx
lines, msgspec structs: ``bench.lean_reader``, the streaming rig's reader) does the same
work for a fraction, and the orchestrator now reads the SDK's raw response that way.

    python -m bench.sdk_cost [--chunks 20000] [--requests 300]

Three readers: the SDK's typed stream; the orchestrator's (the SDK's raw streaming
response, read by ``pam_orchestrator.completions``); and the lean reader alone.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import openai
from pam_orchestrator import completions

from bench import lean_reader, results
from bench.fake_llm import FakeLLM
from bench.lean_reader import MESSAGES
from bench.wsload import run


async def sdk_stream(client: openai.AsyncOpenAI, base_url: str) -> int:
    stream = await client.chat.completions.create(model="bench", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    return sum([1 async for chunk in stream if chunk.choices and chunk.choices[0].delta.content])


async def orchestrator_stream(client: openai.AsyncOpenAI, base_url: str) -> int:
    """What the orchestrator does: the SDK sends the request, ``completions`` reads its raw response."""
    create = client.chat.completions.with_streaming_response.create
    async with create(model="bench", messages=MESSAGES, stream=True) as response:  # type: ignore[arg-type]
        reads = completions.events(response.http_response)
        return sum([1 async for found in reads for chunk in found if chunk.choices and chunk.choices[0].delta.content])


async def lean_stream(client: httpx.AsyncClient, base_url: str) -> int:
    return sum([1 async for _ in lean_reader.contents(client, base_url)])


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
        raw_us = await cpu_per(orchestrator_stream, sdk, url, repeats)
    async with lean_reader.client() as lean:
        lean_us = await cpu_per(lean_stream, lean, url, repeats)
    return {
        "openai_sdk_us": round(sdk_us, 1),
        "sdk_raw_response_msgspec_us": round(raw_us, 1),
        "httpx_msgspec_us": round(lean_us, 1),
    }


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
