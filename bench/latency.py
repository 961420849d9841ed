"""Scenario 5, added latency: the test server's first token comes after a fixed delay; what does
the system add before the client sees its first ``chat_chunk``?  50 concurrent conversations.

The first token carries when the request reached the test server (``a=``) and when the
token left it (``t=``), so per answer

    added = (first chunk seen - chat sent) - (t - a)

which is everything outside the model: gateway, NATS, orchestrator, HTTP and the stream's
reading, both ways.  Beside it the yardstick, the direct path: the same test server read by
the raw reader (``bench.lean_reader``: httpx lines and msgspec, what the orchestrator's own
reader costs), the HTTP share of it.  Targets (issue 23): p50 <= 1.5x and p99 <= 2x the
direct path's.
An answer is its first token after 0.5 s, then 9 more at 50 tokens/s; each conversation
starts at its own offset within one answer's length and waits 0-100 ms (random) between
chats, so 50 conversations make about 65 chats/s without arriving in lockstep.  The first
3 s are not counted: 50 new model connections and first-use costs make them slow.
Conversation history is off (``PAM_HISTORY_TURNS=0``): its lookup is persistence's latency.
An answer counts only once it ends well (``chat_response``; the whole stream read); one
ending in ``error``, or without its first token, is a failure, as is a stalled
conversation, and any failure fails the targets.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench import cli, lean_reader, results
from bench.fake_llm import FakeLLM
from bench.frames import CHAT, is_chunk, is_error, is_final
from bench.project import Project
from bench.server_options import resolved
from bench.stats import summary
from bench.streaming import WARM_UP_TIMEOUT, warm_gateway
from bench.wsload import close_sockets, open_sockets, raise_open_files_limit, run

CONVERSATIONS = 50
FIRST_DELAY = 0.5
TOKENS = 10
RATE = 50.0
WARMUP_SECONDS = 3.0
REPLY_TIMEOUT = 10.0
CYCLE_SECONDS = FIRST_DELAY + TOKENS / RATE
THINK_SECONDS = 0.1
FIRST = re.compile(r"a=(\d+);t=(\d+)")


@dataclass(frozen=True)
class FirstToken:
    """When the first token was seen here, reached the test server and left it (monotonic ns)."""

    seen: int
    arrived: int
    emitted: int


def first_token(text: str) -> FirstToken | None:
    """The first token's clocks, taken as it arrives; None if ``text`` does not carry it."""
    seen = time.monotonic_ns()
    match = FIRST.search(text)
    return None if match is None else FirstToken(seen, int(match[1]), int(match[2]))


@dataclass
class Samples:
    begin: int
    added: list[float] = field(default_factory=list)
    upstream: list[float] = field(default_factory=list)
    downstream: list[float] = field(default_factory=list)
    errors: int = 0
    no_first_token: int = 0
    stalled: int = 0
    first_error: str | None = None

    def answered(self, sent: int, first: FirstToken | None, error: str | None = None) -> None:
        """An answer has ended: record its first token's figures, or why it failed, if measured."""
        if sent < self.begin:
            return
        if error is not None:
            self.errors += 1
            self.first_error = self.first_error or error[:300]
        elif first is None:
            self.no_first_token += 1
        else:
            self.added.append(((first.seen - sent) - (first.emitted - first.arrived)) / 1e6)
            self.upstream.append((first.arrived - sent) / 1e6)
            self.downstream.append((first.seen - first.emitted) / 1e6)

    @property
    def failed(self) -> int:
        return self.errors + self.no_first_token + self.stalled

    def report(self) -> dict[str, Any]:
        return {
            "added_ms": summary(self.added, 3),
            "request_to_model_ms": summary(self.upstream, 3),
            "token_to_client_ms": summary(self.downstream, 3),
            "errors": self.errors,
            "no_first_token": self.no_first_token,
            "stalled_conversations": self.stalled,
            "failed": self.failed,
            "first_error": self.first_error,
        }


async def _chat(ws: Any, samples: Samples) -> None:
    sent = time.monotonic_ns()
    await ws.send(CHAT)
    token = None
    while not is_final(frame := await ws.recv()):
        if token is None and is_chunk(frame):
            token = first_token(frame)
    samples.answered(sent, token, frame if is_error(frame) else None)


async def _pause(first: bool, index: int) -> None:
    """Spread the conversations: staggered starts over one answer's length, then a random
    think time, so 50 clients do not send in lockstep (equal answers would keep them so)."""
    if first:
        await asyncio.sleep(CYCLE_SECONDS * index / CONVERSATIONS)
    else:
        await asyncio.sleep(random.uniform(0, THINK_SECONDS))


async def _over_gateway(ws: Any, index: int, end: float, samples: Samples) -> None:
    first = True
    while time.monotonic() < end:
        await _pause(first, index)
        first = False
        try:
            async with asyncio.timeout(REPLY_TIMEOUT):
                await _chat(ws, samples)
        except TimeoutError:
            samples.stalled += 1
            return


async def _direct(client: httpx.AsyncClient, url: str, index: int, end: float, samples: Samples) -> None:
    first = True
    while time.monotonic() < end:
        await _pause(first, index)
        first = False
        sent = time.monotonic_ns()
        token = None
        async for content in lean_reader.contents(client, url):
            if token is None:
                token = first_token(content)
        samples.answered(sent, token)


def _window(seconds: float) -> tuple[Samples, float]:
    now = time.monotonic()
    return Samples(begin=time.monotonic_ns() + int(WARMUP_SECONDS * 1e9)), now + WARMUP_SECONDS + seconds


async def gateway_load(project: Project, seconds: float) -> Samples:
    await warm_gateway(project)
    sockets = await open_sockets([project.ws_url(f"latency-{i}") for i in range(CONVERSATIONS)], greeted=True)
    samples, end = _window(seconds)
    try:
        conversations = (_over_gateway(ws, i, end, samples) for i, ws in enumerate(sockets))
        await asyncio.wait_for(asyncio.gather(*conversations), seconds + 30)
    finally:
        await close_sockets(sockets)
    return samples


async def direct_load(url: str, seconds: float) -> Samples:
    async with lean_reader.client() as client:
        await asyncio.wait_for(_drain(client, url), WARM_UP_TIMEOUT)  # first-use costs, not measured
        samples, end = _window(seconds)
        conversations = (_direct(client, url, i, end, samples) for i in range(CONVERSATIONS))
        await asyncio.wait_for(asyncio.gather(*conversations), seconds + 30)
    return samples


async def _drain(client: httpx.AsyncClient, url: str) -> None:
    async for _ in lean_reader.contents(client, url):
        pass


def checks(project: dict[str, Any], direct: dict[str, Any]) -> list[dict[str, Any]]:
    """The quantiles hold only if no answer failed on either side; failures get a row of their own."""
    clean = project["failed"] == 0 and direct["failed"] == 0
    rows = []
    for quantile, limit in (("p50", 1.5), ("p99", 2.0)):
        ours, theirs = project["added_ms"].get(quantile), direct["added_ms"].get(quantile)
        versus = results.ratio(ours, theirs)
        met = clean and versus is not None and versus <= limit
        rows.append(results.check(f"added ms {quantile}", ours, theirs, f"<= {limit:g}x direct", met, versus))
    failed = project["failed"], direct["failed"]
    rows.append(results.check("failed answers (errors, no first token, stalled)", *failed, "0", clean))
    return rows


def main() -> None:
    args = cli.parser(__doc__.splitlines()[0]).parse_args()
    raise_open_files_limit()
    seconds = 4.0 if args.quick else 20.0
    options = cli.server_options(args)
    load_before = results.load_average()
    with FakeLLM("latency", TOKENS, RATE, FIRST_DELAY) as llm:
        direct = run(direct_load(llm.url, seconds)).report()
        print(f"  direct: {direct['added_ms']}", flush=True)
        with Project(
            "latency",
            options,
            llm_url=llm.url,
            env={"PAM_HISTORY_TURNS": "0", **cli.service_env(args)},
        ) as project:
            ours = run(gateway_load(project, seconds)).report()
        print(f"  gateway: {ours['added_ms']}", flush=True)
    path = results.write(
        args.name or "latency",
        {
            "scenario": "5",
            "title": f"added latency to first chunk, {CONVERSATIONS} conversations, first token at {FIRST_DELAY:g} s",
            "quick": args.quick,
            "options": {"label": options.label, **resolved(options), "service_env": cli.service_env(args)},
            "load_before": load_before,
            "load_after": results.load_average(),
            "project": ours,
            "yardstick": direct,
            "checks": checks(ours, direct),
        },
    )
    print(path)


if __name__ == "__main__":
    main()
