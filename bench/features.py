"""What each conversation feature costs per chat on scenario 1: every one on, then each one off.

    python -m bench.features [--quick]     # --quick: about 3.5 minutes; full: about 10

Stop, double texting, budgets, the model fallback and privacy settings each add work per chat
(a key-value read or compare-and-set, a subscription).  Each setup below is one stack (gateway
and orchestrator on a namespace of their own, scenario 1's 50 JWT clients), all of them up at
once; their measured windows take turns, ``rounds`` times, each round starting one setup
later, so the shared machine's drift falls on every setup alike.  A feature's cost is
``1 - on / off``, the median over the rounds of that round's two chats/s (rounds with a failed
answer left out); the bound is 5% each.  A negative cost is noise (the "on" setup ran faster).

- **conversation hold** (double texting): ``BENCH_HOLD=off`` (``bench.variants``); there is no
  product setting that turns it off (the turn keeps a conversation's answers in order).
- **stop**: no switch and no per-chat work of its own beyond the hold's (an entry in a dict).
- **token budgets**: off without ``BUDGETS_ON`` (the limits unset); the offline engine spends
  nothing, so on this path a budget is the gateway's check (a lookup in its watched spent
  markers, ``pam_gateway.spent``; two key-value reads before fe684b8).
- **privacy settings**: cannot be switched off (a dict lookup per chat, ``pam_gateway.consent``);
  their "off" is a second, identical all-on stack, so that row measures the noise.
- **model fallback**: the offline engine of scenario 1 has none; measured on the fake model
  server (``bench.fake_llm``, the answer at once), two endpoints (``PAM_MODELS``) against one.
"""

from __future__ import annotations

import contextlib
import json
import statistics
from dataclasses import dataclass, field
from typing import Any

from bench import cli, results
from bench.fake_llm import FakeLLM
from bench.frames import is_final
from bench.project import Project
from bench.server_options import ServerOptions
from bench.throughput import CLIENTS, Window, count_messages, measure_round, median_round
from bench.variants import HOLD
from bench.wsload import raise_open_files_limit, run

BOUND = 0.05
ANSWER_TOKENS = 28
"""As many words as the offline engine's answer to the bench's chat."""
BUDGETS_OFF = {"PAM_USER_TOKENS_PER_DAY": "0", "PAM_USER_TOKENS_PER_MONTH": "0"}


@dataclass(frozen=True)
class Setup:
    name: str
    env: dict[str, str] = field(default_factory=dict)
    llm: bool = False
    """Answered by the fake model server instead of the offline engine."""
    fallback: bool = False
    """A second endpoint after the first (``PAM_MODELS``), never needed while the first answers."""


@dataclass(frozen=True)
class Feature:
    name: str
    on: str
    off: str | None
    how: str


SETUPS = (
    Setup("all on"),
    Setup("hold off", {HOLD: "off"}),
    Setup("budgets off", BUDGETS_OFF),
    Setup("all on, again"),
    Setup("model, two endpoints", llm=True, fallback=True),
    Setup("model, one endpoint", llm=True),
)
FEATURES = (
    Feature("conversation hold", "all on", "hold off", "BENCH_HOLD=off (bench only)"),
    Feature("stop", "all on", None, "no switch; nothing per chat beyond the hold"),
    Feature("token budgets", "all on", "budgets off", "limits unset"),
    Feature("privacy settings", "all on", "all on, again", "no switch: off = an identical stack (noise)"),
    Feature("model fallback", "model, two endpoints", "model, one endpoint", "fake model server, PAM_MODELS 2 vs 1"),
)


def _project(setup: Setup, llm: FakeLLM, options: ServerOptions, base: dict[str, str]) -> Project:
    env = {**base, **setup.env}
    if setup.fallback:
        env["PAM_MODELS"] = json.dumps([{"base_url": llm.url, "model": "bench-fallback"}])
    tag = "features-" + setup.name.replace(",", "").replace(" ", "-")
    return Project(tag, options, llm_url=llm.url if setup.llm else None, env=env)


def measure(window: Window, rounds: int, options: ServerOptions, base: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every setup up at once; rounds in turn, each round starting one setup later."""
    with contextlib.ExitStack() as up:
        llm = up.enter_context(FakeLLM("features", ANSWER_TOKENS, rate=0))
        stacks = {setup.name: up.enter_context(_project(setup, llm, options, base)) for setup in SETUPS}
        urls = {name: [stack.ws_url(f"tp-{i}") for i in range(CLIENTS)] for name, stack in stacks.items()}
        pids = {
            name: {"gateway": stack.gateway.pid, "orchestrator": stack.orchestrators[0].pid}
            for name, stack in stacks.items()
        }
        measured: dict[str, list[dict[str, Any]]] = {name: [] for name in stacks}
        names = list(stacks)
        for number in range(rounds):
            for name in names[number % len(names) :] + names[: number % len(names)]:
                measured[name].append(measure_round(urls[name], True, is_final, window, pids[name]))
                print(f"  round {number + 1}, {name}: {measured[name][-1]['messages_per_s']} chats/s", flush=True)
        counted = {name: run(count_messages(urls[name], stacks[name].namespace)) for name in names}
    return {
        name: {**median_round(measured[name]), "rounds": measured[name], "nats_per_chat": counted[name]}
        for name in names
    }


def cost_rows(setups: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for feature in FEATURES:
        on = setups[feature.on]
        off = setups[feature.off] if feature.off else None
        cost = _paired_cost(on["rounds"], off["rounds"]) if off else None
        clean = on["clean"] and (off is None or off["clean"])
        rows.append(
            {
                "feature": feature.name,
                "how": feature.how,
                "on": on["messages_per_s"],
                "off": off["messages_per_s"] if off else None,
                "cost": cost,
                "met": None if off is None else clean and cost is not None and cost <= BOUND,
                "cpu_us_on": _cpu(on),
                "cpu_us_off": _cpu(off) if off else None,
                "jetstream_on": _jetstream(on),
                "jetstream_off": _jetstream(off) if off else None,
            }
        )
    return rows


def _paired_cost(on: list[dict[str, Any]], off: list[dict[str, Any]]) -> float | None:
    """The median of each round's ``1 - on / off``, over the rounds where both were clean."""
    costs = sorted(
        1 - a["messages_per_s"] / b["messages_per_s"]
        for a, b in zip(on, off, strict=True)
        if a["clean"] and b["clean"] and b["messages_per_s"]
    )
    return round(statistics.median(costs), 3) if costs else None


def _cpu(setup: dict[str, Any]) -> int | None:
    """Gateway, orchestrator and nats-server CPU µs per chat (the load generator left out)."""
    per = setup.get("cpu_us_per_message") or {}
    parts = [per.get(name) for name in ("gateway", "orchestrator", "nats_server")]
    return sum(p for p in parts if p is not None) if per else None


def _jetstream(setup: dict[str, Any]) -> float | None:
    """JetStream round trips per chat on key-value buckets: writes (``kv``) and API requests."""
    counts = setup.get("nats_per_chat") or {}
    if not counts:
        return None
    return round(sum(n for kind, n in counts.items() if kind.startswith("kv ")) + counts.get("api", 0), 2)


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| feature | chats/s all on | chats/s with it off | cost | met (<= 5%) | CPU µs/chat on / off "
        "| JetStream calls/chat on / off | how it is switched off |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        off = row["off"] if row["off"] is not None else "-"
        cost = f"{row['cost'] * 100:.1f}%" if row["cost"] is not None else "-"
        cpu = f"{row['cpu_us_on']} / {row['cpu_us_off'] if row['cpu_us_off'] is not None else '-'}"
        calls = f"{row['jetstream_on']} / {row['jetstream_off'] if row['jetstream_off'] is not None else '-'}"
        met = "-" if row["met"] is None else "yes" if row["met"] else "NO"
        lines.append(f"| {row['feature']} | {row['on']} | {off} | {cost} | {met} | {cpu} | {calls} | {row['how']} |")
    return "\n".join(lines)


def main() -> None:
    args = cli.parser(__doc__.splitlines()[0]).parse_args()
    raise_open_files_limit()
    window = Window(warmup=1, seconds=4) if args.quick else Window(warmup=2, seconds=8)
    rounds = 3 if args.quick else 5
    load_before = results.load_average()
    setups = measure(window, rounds, cli.server_options(args), cli.service_env(args))
    rows = cost_rows(setups)
    path = results.write(
        args.name or "features",
        {
            "scenario": "1 (features)",
            "title": "what each conversation feature costs per chat, scenario 1",
            "quick": args.quick,
            "rounds": rounds,
            "window": {"warmup": window.warmup, "seconds": window.seconds},
            "load_before": load_before,
            "load_after": results.load_average(),
            "setups": setups,
            "features": rows,
        },
    )
    print(render(rows))
    print(path)


if __name__ == "__main__":
    main()
