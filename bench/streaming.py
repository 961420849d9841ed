"""Scenario 2, streaming capacity: N conversations at once, each streamed 50 tokens/s for 10 s.

The largest N for which every token reaches its client within 50 ms (p99) of being
emitted, none is lost, and every answer ends with its ``chat_response`` (an ``error`` end,
or none, fails the trial however fast its tokens came).  Beside it, the rig's own
ceiling: the same test server read directly by this load generator with the lean reader
(``bench.lean_reader``: httpx + msgspec, what the orchestrator's own reader costs), no
gateway or NATS between.  Until 2026-12 the rig read with the ``openai`` SDK's typed
stream, which made the load generator the bottleneck of its own ceiling.
Target: N >= 500 and N >= 0.5x the rig's ceiling.

Each token's text carries its CLOCK_MONOTONIC emit time (``bench.fake_llm``), so its
delay is measured at the client whatever it passed through.  N grows along a ladder
until a trial fails, then is bisected between the last pass and the first failure.
A failed trial is run once more before it counts: the machine is shared, and a p99
over seconds also catches other people's CPU spikes.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from bench import cli, lean_reader, profiles, results
from bench.fake_llm import FakeLLM
from bench.frames import CHAT, is_chunk, is_error, is_final
from bench.meters import scenario_meter
from bench.project import Project
from bench.server_options import resolved
from bench.stats import summary
from bench.wsload import close_sockets, open_sockets, raise_open_files_limit, run

RATE = 50.0
P99_LIMIT_MS = 50.0
STAGGER_SECONDS = 1.0
GRACE_SECONDS = 20.0
WARM_UP_TIMEOUT = 30.0
TOKEN = re.compile(r"t=(\d+);i=(\d+)")


@dataclass
class Plan:
    seconds: float
    ladder: list[int]
    refine: int

    @property
    def tokens(self) -> int:
        return int(RATE * self.seconds)


@dataclass
class Trial:
    n: int
    passed: bool
    lost: int
    unfinished: int
    errors: int
    delay_ms: dict[str, float]
    server_lag_p99_ms: int
    cpu_share: dict[str, float] = field(default_factory=dict)
    first_error: str | None = None


class Collector:
    """Token delays (ns), the distinct tokens each conversation received, and how answers ended."""

    def __init__(self) -> None:
        self.delays: list[int] = []
        self.counts: list[int] = []
        self.finished = 0
        self.errors = 0
        self.first_error: str | None = None

    def take(self, text: str, seen: set[int]) -> None:
        now = time.monotonic_ns()
        for match in TOKEN.finditer(text):
            seen.add(int(match[2]))
            self.delays.append(now - int(match[1]))

    def failed(self, why: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or why[:300]


async def _over_gateway(ws: Any, start_in: float, collector: Collector) -> None:
    await asyncio.sleep(start_in)
    await ws.send(CHAT)
    seen: set[int] = set()
    try:
        while not is_final(frame := await ws.recv()):
            if is_chunk(frame):
                collector.take(frame, seen)
        if is_error(frame):
            collector.failed(frame)
        else:
            collector.finished += 1
    finally:
        collector.counts.append(len(seen))


async def _direct(client: httpx.AsyncClient, url: str, start_in: float, collector: Collector) -> None:
    await asyncio.sleep(start_in)
    seen: set[int] = set()
    try:
        async for content in lean_reader.contents(client, url):
            collector.take(content, seen)
        collector.finished += 1
    except httpx.HTTPError as exc:
        collector.failed(repr(exc))
    finally:
        collector.counts.append(len(seen))


async def _gather(conversations: list[Any], plan: Plan) -> None:
    """Run them all, bounded in time; a conversation cut off by the bound (or by any other
    exception) ends neither finished nor failed, so it counts as unfinished."""
    tasks = [asyncio.ensure_future(c) for c in conversations]
    await asyncio.wait(tasks, timeout=STAGGER_SECONDS + plan.seconds + GRACE_SECONDS)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def gateway_load(project: Project, n: int, plan: Plan) -> Collector:
    sockets = await open_sockets([project.ws_url(f"stream-{i}") for i in range(n)], greeted=True)
    collector = Collector()
    try:
        await _gather([_over_gateway(ws, STAGGER_SECONDS * i / n, collector) for i, ws in enumerate(sockets)], plan)
    finally:
        await close_sockets(sockets)
    return collector


async def direct_load(url: str, n: int, plan: Plan) -> Collector:
    collector = Collector()
    async with lean_reader.client() as client:
        await _gather([_direct(client, url, STAGGER_SECONDS * i / n, collector) for i in range(n)], plan)
    return collector


async def _whole_answer(ws: Any) -> None:
    await ws.send(CHAT)
    while not is_final(frame := await ws.recv()):
        pass
    if is_error(frame):
        raise RuntimeError(f"warm-up chat failed: {frame[:300]}")


async def warm_gateway(project: Project) -> None:
    """One whole conversation before anything is measured: every lazy import and first-use
    cost (the end of a stream, its records) is paid outside the measurement."""
    (ws,) = await open_sockets([project.ws_url("warm-up")], greeted=True)
    try:
        await asyncio.wait_for(_whole_answer(ws), WARM_UP_TIMEOUT)
    finally:
        await ws.close()


async def _whole_stream(client: httpx.AsyncClient, url: str) -> None:
    async for _ in lean_reader.contents(client, url):
        pass


async def warm_direct(url: str) -> None:
    async with lean_reader.client() as client:
        await asyncio.wait_for(_whole_stream(client, url), WARM_UP_TIMEOUT)


def judge(n: int, collector: Collector, plan: Plan, llm: FakeLLM, cpu: dict[str, float]) -> Trial:
    delays = summary([d / 1e6 for d in collector.delays])
    lost = n * plan.tokens - sum(collector.counts)
    unfinished = n - collector.finished - collector.errors
    lag = int(llm.stats()["lag_ms_p99"])
    complete = lost == 0 and unfinished == 0 and collector.errors == 0
    passed = complete and delays.get("p99", 1e9) <= P99_LIMIT_MS and lag <= P99_LIMIT_MS
    elapsed = STAGGER_SECONDS + plan.seconds
    share = {name: round(s / elapsed, 2) for name, s in cpu.items()}
    return Trial(n, passed, lost, unfinished, collector.errors, delays, lag, share, collector.first_error)


def attempt(trial: Callable[[int], Trial], n: int, trials: list[Trial]) -> bool:
    """Run ``n``; a failure is tried once more (other work on the shared machine causes spikes)."""
    for _ in range(2):
        trials.append(last := trial(n))
        failures = f" lost {last.lost}, unfinished {last.unfinished}, errors {last.errors}"
        print(f"  n={n}: {'pass' if last.passed else 'FAIL'} {last.delay_ms}{failures}", flush=True)
        if last.passed:
            return True
    return False


def search(trial: Callable[[int], Trial], plan: Plan) -> tuple[int, list[Trial]]:
    """Climb the ladder to the first failure, then bisect ``plan.refine`` times."""
    best, failed_at, trials = 0, None, []
    for n in plan.ladder:
        if not attempt(trial, n, trials):
            failed_at = n
            break
        best = n
    for _ in range(plan.refine):
        if failed_at is None or failed_at - best <= max(10, best // 10):
            break
        middle = (best + failed_at) // 20 * 10
        best, failed_at = (middle, failed_at) if attempt(trial, middle, trials) else (best, middle)
    return best, trials


def measure_rig(plan: Plan) -> dict[str, Any]:
    with FakeLLM("streaming-rig", plan.tokens, RATE) as llm:
        run(warm_direct(llm.url))

        def trial(n: int) -> Trial:
            meter = scenario_meter({"fake_llm": llm.pid})
            llm.stats(reset=True)
            meter.start()
            collector = run(direct_load(llm.url, n, plan))
            return judge(n, collector, plan, llm, meter.stop())

        best, trials = search(trial, plan)
    return {"max_conversations": best, "trials": [asdict(t) for t in trials]}


def measure_project(plan: Plan, args: Any) -> dict[str, Any]:
    options = cli.server_options(args)
    with FakeLLM("streaming", plan.tokens, RATE) as llm:
        with Project(
            "streaming",
            options,
            llm_url=llm.url,
            orchestrators=args.orchestrators,
            env=cli.service_env(args),
        ) as project:
            run(warm_gateway(project))
            pids = {"gateway": project.gateway.pid, "fake_llm": llm.pid}
            pids |= {f"orchestrator_{i + 1}": child.pid for i, child in enumerate(project.orchestrators)}

            def trial(n: int) -> Trial:
                meter = scenario_meter(pids)
                llm.stats(reset=True)
                meter.start()
                collector = run(gateway_load(project, n, plan))
                return judge(n, collector, plan, llm, meter.stop())

            best, trials = search(trial, plan)
            report: dict[str, Any] = {"max_conversations": best, "trials": [asdict(t) for t in trials]}
            if args.profile:
                report["profiles"] = profile(project, trial, args.profile_n, plan)
    return report


def profile(project: Project, trial: Callable[[int], Trial], n: int, plan: Plan) -> dict[str, Any]:
    """One extra trial at ``n`` conversations with py-spy on the gateway and the first orchestrator."""
    seconds = STAGGER_SECONDS + plan.seconds
    pids = {"gateway": project.gateway.pid, "orchestrator": project.orchestrators[0].pid}
    spies = profiles.record(pids, seconds, "profile-streaming")
    profiled = trial(n)
    return {"n": n, "trial": asdict(profiled), **profiles.collect(spies, seconds)}


def checks(project: dict[str, Any], rig: dict[str, Any]) -> list[dict[str, Any]]:
    n, ceiling = project["max_conversations"], rig["max_conversations"]
    versus = results.ratio(n, ceiling)
    return [
        results.check("conversations (p99 <= 50 ms, none lost)", n, None, ">= 500", n >= 500),
        results.check("conversations vs rig ceiling", n, ceiling, ">= 0.5x", (versus or 0) >= 0.5, versus),
    ]


def main() -> None:
    parser = cli.parser(__doc__.splitlines()[0])
    parser.add_argument("--orchestrators", type=int, default=1)
    parser.add_argument("--profile-n", type=int, default=200, help="conversations during the profiled trial")
    args = parser.parse_args()
    raise_open_files_limit()
    quick = Plan(3, [50, 100, 200, 400], 1)
    plan = quick if args.quick else Plan(10, [50, 100, 150, 200, 250, 300, 400, 500, 600, 800, 1000], 2)
    load_before = results.load_average()
    print("rig ceiling (lean reader, httpx + msgspec, straight to the test server):", flush=True)
    rig = measure_rig(plan)
    print("project (gateway, NATS, orchestrator):", flush=True)
    project = measure_project(plan, args)
    options = cli.server_options(args)
    path = results.write(
        args.name or "streaming",
        {
            "scenario": "2",
            "title": f"streaming capacity, {RATE:g} tokens/s for {plan.seconds:g} s per conversation",
            "quick": args.quick,
            "options": {
                "label": options.label,
                **resolved(options),
                "orchestrators": args.orchestrators,
                "service_env": cli.service_env(args),
            },
            "load_before": load_before,
            "load_after": results.load_average(),
            "project": project,
            "yardstick": rig,
            "checks": checks(project, rig),
        },
    )
    print(path)


if __name__ == "__main__":
    main()
