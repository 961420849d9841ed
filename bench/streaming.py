"""Scenario 2, streaming capacity: N conversations at once, each streamed ``--rate`` tokens/s (50) for 10 s.

The largest N for which every token reaches its client within 50 ms (p99) of being
emitted, none is lost, and every answer ends with its ``chat_response`` (an ``error`` end,
or none, fails the trial however fast its tokens came).  Beside it, the rig's own
ceiling: the same test server read directly by this load generator with the lean reader
(``bench.lean_reader``: httpx + msgspec, what the orchestrator's own reader costs), no
gateway or NATS between.  Until 2026-12 the rig read with the ``openai`` SDK's typed
stream, which made the load generator the bottleneck of its own ceiling.
Target (issue 23): N >= 0.7x the rig's ceiling at 50 tokens/s (N itself is reported); at
other rates (``make bench`` adds 150 tokens/s) the row is reported.

Also reported, at a fixed N (``--at``; 5,000 tokens/s' worth by default): the gateway's CPU
µs per frame it forwards (frames counted by this load generator), against the bare relay's
(``bench.yardsticks``, ``/ws/paced``: the same frames, one per token at the same rate,
forwarded from NATS to the socket with nothing else), and frames per answer.

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
from bench.meters import CpuMeter, scenario_meter
from bench.project import Project
from bench.server_options import ServerOptions, resolved
from bench.stats import summary
from bench.wsload import close_sockets, open_sockets, raise_open_files_limit, run
from bench.yardsticks import Yardstick

RATE = 50.0
P99_LIMIT_MS = 50.0
STAGGER_SECONDS = 1.0
GRACE_SECONDS = 20.0
WARM_UP_TIMEOUT = 30.0
FIXED_TOKENS_PER_S = 5000
"""The load of the fixed-N trial (CPU per frame, frames per answer): 100 conversations at 50 tokens/s."""
LADDER = (50, 100, 150, 200, 250, 300, 400, 500, 600, 800, 1000)
QUICK_LADDER = (50, 100, 200, 400)
TOKEN = re.compile(r"t=(\d+);i=(\d+)")


@dataclass
class Plan:
    seconds: float
    ladder: list[int]
    refine: int
    rate: float = RATE

    @property
    def tokens(self) -> int:
        return int(self.rate * self.seconds)

    @property
    def fixed_n(self) -> int:
        return fixed_n(self.rate)


def scaled(ladder: tuple[int, ...], rate: float) -> list[int]:
    """The ladder for ``rate``: the same tokens/s per step as at 50 tokens/s, in tens."""
    return sorted({max(10, round(n * RATE / rate / 10) * 10) for n in ladder})


def fixed_n(rate: float) -> int:
    return max(10, round(FIXED_TOKENS_PER_S / rate / 10) * 10)


def plan_for(quick: bool, rate: float) -> Plan:
    """Faster rates stream for 5 s in a full run (750 tokens at 150 tokens/s): the run stays short."""
    if quick:
        return Plan(3, scaled(QUICK_LADDER, rate), 1, rate)
    return Plan(10 if rate <= RATE else 5, scaled(LADDER, rate), 2, rate)


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
    frames: int = 0
    frames_per_answer: float | None = None
    cpu_us_per_frame: dict[str, float] = field(default_factory=dict)


class Collector:
    """Token delays (ns), the distinct tokens each conversation received, frames, and how answers ended."""

    def __init__(self) -> None:
        self.delays: list[int] = []
        self.counts: list[int] = []
        self.frames = 0
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


async def _over_socket(ws: Any, start_in: float, collector: Collector, chat: str = CHAT) -> None:
    await asyncio.sleep(start_in)
    await ws.send(chat)
    seen: set[int] = set()
    try:
        while not is_final(frame := await ws.recv()):
            collector.frames += 1
            if is_chunk(frame):
                collector.take(frame, seen)
        collector.frames += 1
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


async def socket_load(urls: list[str], greeted: bool, plan: Plan, meter: CpuMeter) -> Collector:
    """One conversation per socket; CPU is metered from the first chat to the last answer
    (opening and closing the sockets is not a streaming cost)."""
    sockets = await open_sockets(urls, greeted=greeted)
    collector = Collector()
    n = len(sockets)
    try:
        meter.start()
        await _gather([_over_socket(ws, STAGGER_SECONDS * i / n, collector) for i, ws in enumerate(sockets)], plan)
        meter.stop()
    finally:
        await close_sockets(sockets)
    return collector


async def direct_load(url: str, n: int, plan: Plan, meter: CpuMeter) -> Collector:
    collector = Collector()
    async with lean_reader.client() as client:
        meter.start()
        await _gather([_direct(client, url, STAGGER_SECONDS * i / n, collector) for i in range(n)], plan)
        meter.stop()
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
    await warm_socket(project.ws_url("warm-up"), greeted=True)


async def warm_socket(url: str, greeted: bool) -> None:
    (ws,) = await open_sockets([url], greeted=greeted)
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


def measured(meter: CpuMeter) -> dict[str, float]:
    """The meter's processes, and ``others``: the rest of the machine's CPU over the same window."""
    return {**meter.used, "others": meter.others}


def judge(n: int, collector: Collector, plan: Plan, lag_ms: int, cpu: dict[str, float]) -> Trial:
    delays = summary([d / 1e6 for d in collector.delays])
    lost = n * plan.tokens - sum(collector.counts)
    unfinished = n - collector.finished - collector.errors
    complete = lost == 0 and unfinished == 0 and collector.errors == 0
    passed = complete and delays.get("p99", 1e9) <= P99_LIMIT_MS and lag_ms <= P99_LIMIT_MS
    elapsed = STAGGER_SECONDS + plan.seconds
    share = {name: round(s / elapsed, 2) for name, s in cpu.items()}
    frames = collector.frames
    per_answer = round(frames / collector.finished, 1) if collector.finished else None
    per_frame = {name: round(1e6 * s / frames, 1) for name, s in cpu.items() if name != "others"} if frames else {}
    trial = Trial(n, passed, lost, unfinished, collector.errors, delays, lag_ms, share, collector.first_error)
    trial.frames, trial.frames_per_answer, trial.cpu_us_per_frame = frames, per_answer, per_frame
    return trial


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
    with FakeLLM("streaming-rig", plan.tokens, plan.rate) as llm:
        run(warm_direct(llm.url))

        def trial(n: int) -> Trial:
            meter = scenario_meter({"fake_llm": llm.pid})
            llm.stats(reset=True)
            collector = run(direct_load(llm.url, n, plan, meter))
            return judge(n, collector, plan, int(llm.stats()["lag_ms_p99"]), measured(meter))

        best, trials = search(trial, plan)
    return {"max_conversations": best, "trials": [asdict(t) for t in trials]}


@dataclass
class Setup:
    """How the project runs for one measurement."""

    options: ServerOptions = field(default_factory=ServerOptions)
    orchestrators: int = 1
    env: dict[str, str] = field(default_factory=dict)
    profile_n: int | None = None
    search: bool = True


def measure_project(plan: Plan, setup: Setup) -> dict[str, Any]:
    """The capacity search (unless ``setup.search`` is off), then one trial at ``plan.fixed_n``."""
    with FakeLLM("streaming", plan.tokens, plan.rate) as llm:
        with Project(
            "streaming", setup.options, llm_url=llm.url, orchestrators=setup.orchestrators, env=setup.env
        ) as project:
            run(warm_gateway(project))
            pids = {"gateway": project.gateway.pid, "fake_llm": llm.pid}
            pids |= {f"orchestrator_{i + 1}": child.pid for i, child in enumerate(project.orchestrators)}

            def trial(n: int) -> Trial:
                meter = scenario_meter(pids)
                llm.stats(reset=True)
                urls = [project.ws_url(f"stream-{i}") for i in range(n)]
                collector = run(socket_load(urls, True, plan, meter))
                return judge(n, collector, plan, int(llm.stats()["lag_ms_p99"]), measured(meter))

            report: dict[str, Any] = {}
            if setup.search:
                best, trials = search(trial, plan)
                report |= {"max_conversations": best, "trials": [asdict(t) for t in trials]}
            print(f"  fixed n={plan.fixed_n}:", flush=True)
            report["fixed"] = asdict(trial(plan.fixed_n))
            if setup.profile_n:
                report["profiles"] = profile(project, trial, setup.profile_n, plan)
    return report


def measure_relay(plan: Plan, options: ServerOptions) -> dict[str, Any]:
    """The bare relay forwarding the same paced frames, at ``plan.fixed_n`` conversations."""
    with Yardstick("relay", "streaming", options, paced=(plan.tokens, plan.rate)) as relay:
        assert relay.responder is not None
        run(warm_socket(relay.paced_url, greeted=False))
        meter = scenario_meter({"relay": relay.server.pid, "responder": relay.responder.pid})
        print(f"  fixed n={plan.fixed_n}:", flush=True)
        collector = run(socket_load([relay.paced_url] * plan.fixed_n, False, plan, meter))
        return {"fixed": asdict(judge(plan.fixed_n, collector, plan, 0, measured(meter)))}


def profile(project: Project, trial: Callable[[int], Trial], n: int, plan: Plan) -> dict[str, Any]:
    """One extra trial at ``n`` conversations with py-spy on the gateway and the first orchestrator."""
    seconds = STAGGER_SECONDS + plan.seconds
    pids = {"gateway": project.gateway.pid, "orchestrator": project.orchestrators[0].pid}
    spies = profiles.record(pids, seconds, "profile-streaming")
    profiled = trial(n)
    return {"n": n, "trial": asdict(profiled), **profiles.collect(spies, seconds)}


def frame_cost(project: dict[str, Any], relay: dict[str, Any]) -> tuple[float | None, float | None, bool]:
    """Gateway and bare relay CPU µs per forwarded frame at the fixed N, and whether both trials were whole."""
    ours, bare = project["fixed"], relay["fixed"]
    whole = all(t["lost"] == 0 and t["unfinished"] == 0 and t["errors"] == 0 for t in (ours, bare))
    return ours["cpu_us_per_frame"].get("gateway"), bare["cpu_us_per_frame"].get("relay"), whole


def checks(project: dict[str, Any], rig: dict[str, Any], relay: dict[str, Any], rate: float) -> list[dict[str, Any]]:
    n, ceiling = project["max_conversations"], rig["max_conversations"]
    versus = results.ratio(n, ceiling)
    gateway, bare, whole = frame_cost(project, relay)
    at = f"{rate:g} tokens/s"
    cost = results.check(
        f"gateway CPU us per forwarded frame vs bare relay, {at}, n={project['fixed']['n']}",
        gateway,
        bare,
        "reported",
        whole and gateway is not None,
        results.ratio(gateway, bare),
    )
    if rate != RATE:
        row = f"conversations at {at} (p99 <= 50 ms) vs rig ceiling at {at}"
        return [results.check(row, n, ceiling, "reported", n > 0 and ceiling > 0, versus), cost]
    return [
        results.check("conversations (p99 <= 50 ms, none lost)", n, None, "reported", n > 0),
        results.check("conversations vs rig ceiling", n, ceiling, ">= 0.7x", (versus or 0) >= 0.7, versus),
        cost,
    ]


def main() -> None:
    parser = cli.parser(__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=RATE, help="tokens per second of every answer")
    parser.add_argument("--orchestrators", type=int, default=1)
    parser.add_argument("--profile-n", type=int, default=200, help="conversations during the profiled trial")
    args = parser.parse_args()
    raise_open_files_limit()
    plan = plan_for(args.quick, args.rate)
    options = cli.server_options(args)
    setup = Setup(options, args.orchestrators, cli.service_env(args), args.profile_n if args.profile else None)
    load_before = results.load_average()
    print(f"rig ceiling at {plan.rate:g} tokens/s (lean reader, straight to the test server):", flush=True)
    rig = measure_rig(plan)
    print("project (gateway, NATS, orchestrator):", flush=True)
    project = measure_project(plan, setup)
    print("bare relay (NATS to socket, the same frames paced one per token):", flush=True)
    relay = measure_relay(plan, options)
    gateway, bare, _ = frame_cost(project, relay)
    print(f"CPU us per forwarded frame at n={plan.fixed_n}: gateway {gateway}, bare relay {bare}", flush=True)
    default_name = "streaming" if args.rate == RATE else f"streaming-{args.rate:g}"
    path = results.write(
        args.name or default_name,
        {
            "scenario": "2",
            "title": f"streaming capacity, {plan.rate:g} tokens/s for {plan.seconds:g} s per conversation",
            "quick": args.quick,
            "rate": plan.rate,
            "options": {
                "label": options.label,
                **resolved(options),
                "orchestrators": args.orchestrators,
                "service_env": setup.env,
            },
            "load_before": load_before,
            "load_after": results.load_average(),
            "project": project,
            "yardstick": {**rig, "relay": relay},
            "checks": checks(project, rig, relay, plan.rate),
        },
    )
    print(path)


if __name__ == "__main__":
    main()
