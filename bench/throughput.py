"""Scenario 1, request throughput: 50 clients send chats back to back, answered by the offline engine.

Beside it, in the same run, the yardstick: a bare Starlette WebSocket endpoint that
forwards each frame as a NATS request to a bare responder.  Targets (issue 23): the
project's messages/s at least 0.4x the yardstick's, and its p99 at most 3x.

A "message" is one chat answered: sent, then read until its final frame
(``chat_response``; the yardstick's single reply).  Sockets are authenticated with
JWTs (not demo), so the gateway journals every chat as it would in production.

An answer ending in an ``error`` frame is a failure, not a message (a fast error would
raise messages/s), and so is a client left waiting: a round with any failure does not
count, and the table reports them.

Also reported (``project.nats_messages_per_chat``): the NATS messages one chat costs, by
kind, counted over one short extra drive (not a measured round; ``bench.nats_count``).

The offline engine streams its answer word by word (28 frames here), so the results
also carry ``yardstick.streamed``: the same bare relay answering with 28 frames, the
floor for an answer streamed that way (not a target, the evidence for coalescing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench import cli, profiles, results
from bench.frames import CHAT, is_error, is_final
from bench.meters import CpuMeter, scenario_meter
from bench.nats_count import MessageCount
from bench.project import NATS_URL, Project
from bench.server_options import ServerOptions, resolved
from bench.stats import summary
from bench.wsload import close_sockets, open_sockets, raise_open_files_limit, run
from bench.yardsticks import Yardstick

CLIENTS = 50
REPLY_TIMEOUT = 10.0
COUNT_WINDOW = (0.5, 2.0)
"""Warm-up and counted seconds of the drive that counts NATS messages per chat."""


@dataclass
class Window:
    """Seconds driven before measuring (connections, caches), then seconds measured."""

    warmup: float
    seconds: float


@dataclass
class Tally:
    """What one side's clients saw over the measured window."""

    latencies: list[float] = field(default_factory=list)
    frames: int = 0
    errors: int = 0
    stalled: int = 0
    first_error: str | None = None


def any_final(frame: str) -> bool:
    """The bare relay answers with a single frame."""
    return True


async def _answer(ws: Any, final: Callable[[str], bool]) -> tuple[str, int]:
    """Send one chat and read to its final frame; returns that frame and how many frames came."""
    await ws.send(CHAT)
    frames = 0
    while True:
        frame = await ws.recv()
        frames += 1
        if final(frame):
            return frame, frames


async def _client(ws: Any, final: Callable[[str], bool], begin: float, end: float, tally: Tally) -> None:
    while (sent := time.monotonic()) < end:
        try:
            async with asyncio.timeout(REPLY_TIMEOUT):
                frame, frames = await _answer(ws, final)
        except TimeoutError:
            tally.stalled += 1
            return
        done = time.monotonic()
        if sent < begin or done > end:
            continue
        if is_error(frame):
            tally.errors += 1
            tally.first_error = tally.first_error or frame[:300]
        else:
            tally.latencies.append((done - sent) * 1000)
            tally.frames += frames


async def measure(
    urls: list[str], greeted: bool, final: Callable[[str], bool], window: Window, meter: CpuMeter
) -> Tally:
    """Drive every socket for warm-up + window; CPU is metered over the window only."""
    sockets = await open_sockets(urls, greeted)
    loop = asyncio.get_running_loop()
    begin = time.monotonic() + window.warmup
    end = begin + window.seconds
    loop.call_at(loop.time() + window.warmup, meter.start)
    tally = Tally()
    try:
        clients = (_client(ws, final, begin, end, tally) for ws in sockets)
        await asyncio.wait_for(asyncio.gather(*clients), window.warmup + window.seconds + 30)
        meter.stop()
    finally:
        await close_sockets(sockets)
    return tally


def _report(tally: Tally, window: Window, cpu: dict[str, float]) -> dict[str, Any]:
    done = len(tally.latencies)
    rate = done / window.seconds
    return {
        "messages_per_s": round(rate),
        "latency_ms": summary(tally.latencies),
        "frames_per_message": round(tally.frames / done, 1) if done else None,
        "errors": tally.errors,
        "stalled_clients": tally.stalled,
        "clean": tally.errors == 0 and tally.stalled == 0,
        "first_error": tally.first_error,
        "cpu_seconds": cpu,
        "cpu_us_per_message": {name: round(1e6 * s / (rate * window.seconds)) for name, s in cpu.items()}
        if done
        else {},
    }


def measure_round(
    urls: list[str], greeted: bool, final: Callable[[str], bool], window: Window, pids: dict[str, int]
) -> dict:
    meter = scenario_meter(pids)
    tally = run(measure(urls, greeted, final, window, meter))
    return _report(tally, window, meter.used)


async def count_messages(urls: list[str], namespace: str) -> dict[str, float]:
    async with MessageCount(NATS_URL, namespace) as counter:
        loop = asyncio.get_running_loop()
        loop.call_at(loop.time() + sum(COUNT_WINDOW), counter.stop)  # at the window's end, as it started
        await measure(urls, True, is_final, Window(*COUNT_WINDOW), counter)  # counts as its meter
    return counter.per_chat()


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The clean round with the median rate, every round's rate and failures beside it (the machine
    is shared).  Rounds with failed answers do not count; with no clean round the result is not clean."""
    counted = [r for r in rounds if r["clean"]] or rounds
    chosen = sorted(counted, key=lambda r: r["messages_per_s"])[len(counted) // 2]
    return {
        **chosen,
        "rounds_messages_per_s": [r["messages_per_s"] for r in rounds],
        "rounds_failed": [r["errors"] + r["stalled_clients"] for r in rounds],
    }


def measure_both(options: ServerOptions, window: Window, rounds: int, args: Any) -> tuple[dict, dict]:
    """Both stacks up at once; their measurement windows alternate, yardstick first, ``rounds`` times."""
    with (
        Yardstick("relay", "throughput", options) as yardstick,
        Project("throughput", options, env=cli.service_env(args)) as project,
    ):
        assert yardstick.responder is not None
        bare = {"relay": yardstick.server.pid, "responder": yardstick.responder.pid}
        ours = {"gateway": project.gateway.pid, "orchestrator": project.orchestrators[0].pid}
        urls = [project.ws_url(f"tp-{i}") for i in range(CLIENTS)]
        bare_rounds, streamed_rounds, our_rounds, profiled = [], [], [], {}
        for number in range(rounds):
            bare_rounds.append(measure_round([yardstick.url] * CLIENTS, False, any_final, window, bare))
            streamed_rounds.append(measure_round([yardstick.stream_url] * CLIENTS, False, is_final, window, bare))
            seconds = window.warmup + window.seconds
            spies = profiles.record(ours, seconds, "profile-throughput") if args.profile and number == 0 else {}
            our_rounds.append(measure_round(urls, True, is_final, window, ours))
            profiled |= profiles.collect(spies, seconds)
        per_chat = run(count_messages(urls, project.namespace))
    yard = {**median_round(bare_rounds), "streamed": median_round(streamed_rounds)}
    measured = {**median_round(our_rounds), "nats_messages_per_chat": per_chat}
    return {**measured, **({"profiles": profiled} if profiled else {})}, yard


def checks(project: dict[str, Any], yardstick: dict[str, Any]) -> list[dict[str, Any]]:
    """Rate and p99 hold only when both sides' counted rounds are clean; failures get a row of their own."""
    clean = project["clean"] and yardstick["clean"]
    rate = results.ratio(project["messages_per_s"], yardstick["messages_per_s"])
    p99 = results.ratio(project["latency_ms"].get("p99"), yardstick["latency_ms"].get("p99"))
    failed = sum(project["rounds_failed"]), sum(yardstick["rounds_failed"])
    return [
        results.check(
            "messages/s",
            project["messages_per_s"],
            yardstick["messages_per_s"],
            ">= 0.4x",
            clean and (rate or 0) >= 0.4,
            rate,
        ),
        results.check(
            "p99 ms",
            project["latency_ms"].get("p99"),
            yardstick["latency_ms"].get("p99"),
            "<= 3x",
            clean and p99 is not None and p99 <= 3,
            p99,
        ),
        results.check("failed answers (error frames, stalled clients)", *failed, "0", failed == (0, 0)),
    ]


def main() -> None:
    args = cli.parser(__doc__.splitlines()[0]).parse_args()
    raise_open_files_limit()
    options = cli.server_options(args)
    window = Window(warmup=1, seconds=5) if args.quick else Window(warmup=2, seconds=15)
    load_before = results.load_average()
    project, yardstick = measure_both(options, window, 1 if args.quick else 3, args)
    path = results.write(
        args.name or "throughput",
        {
            "scenario": "1",
            "title": "request throughput, 50 clients, offline engine",
            "quick": args.quick,
            "options": {"label": options.label, **resolved(options), "service_env": cli.service_env(args)},
            "load_before": load_before,
            "load_after": results.load_average(),
            "project": project,
            "yardstick": yardstick,
            "checks": checks(project, yardstick),
        },
    )
    print(f"NATS messages per chat: {project['nats_messages_per_chat']}")
    print(path)


if __name__ == "__main__":
    main()
