"""The chunk window swept: scenario 2 at each ``PAM_CHUNK_WINDOW_MS`` and token rate.

    python -m bench.chunk_window --quick          # 10, 15, 25, 40 ms at 50 and 150 tokens/s
    python -m bench.chunk_window --windows 0,15 --rates 150

For every rate the rig ceiling is searched once (the window does not touch it); for every
window a fresh project (``PAM_CHUNK_WINDOW_MS`` set on every service) is searched for its
capacity, then run at the fixed N of that rate (``bench.streaming.fixed_n``: 5,000 tokens/s'
worth) for frames per answer, the p99 token delay, and CPU per frame and per token.  The
ladder is finer than scenario 2's own, so neighbouring windows can be told apart.
Writes ``bench/results/chunk_window.json`` and prints the table.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench import cli, results, table
from bench.server_options import resolved
from bench.streaming import Plan, Setup, measure_project, measure_rig, scaled
from bench.wsload import raise_open_files_limit

WINDOWS = "10,15,25,40"
RATES = "50,150"
LADDER = (60, 100, 130, 160, 190, 220, 250, 300, 400)
HEADER = ["window ms", "tokens/s", "frames/answer", "capacity", "vs rig", "p50 ms at N", "p99 ms at N", "N"]
HEADER += ["gateway us/frame", "orchestrator us/token"]


def plan_for(quick: bool, rate: float) -> Plan:
    return Plan(5 if quick else 10, scaled(LADDER, rate), 1 if quick else 2, rate)


def row(window: float, plan: Plan, project: dict[str, Any], ceiling: int) -> dict[str, Any]:
    """One line of the table, from a project's search and its fixed-N trial."""
    fixed = project["fixed"]
    seconds = fixed["cpu_us_per_frame"]
    tokens = fixed["n"] * plan.tokens
    orchestrator = seconds.get("orchestrator_1")
    per_token = round(orchestrator * fixed["frames"] / tokens, 1) if orchestrator is not None and tokens else None
    return {
        "window_ms": window,
        "rate": plan.rate,
        "frames_per_answer": fixed["frames_per_answer"],
        "capacity": project["max_conversations"],
        "vs_rig": results.ratio(project["max_conversations"], ceiling),
        "p50_ms": fixed["delay_ms"].get("p50"),
        "p99_ms": fixed["delay_ms"].get("p99"),
        "n": fixed["n"],
        "fixed_passed": fixed["passed"],
        "gateway_us_per_frame": seconds.get("gateway"),
        "orchestrator_us_per_token": per_token,
    }


def render(rows: list[dict[str, Any]], markdown: bool = False) -> str:
    """The sweep as a table; a fixed-N trial that failed (lost tokens, over 50 ms) says so by its p99."""
    keys = ["window_ms", "rate", "frames_per_answer", "capacity", "vs_rig", "p50_ms", "p99_ms", "n"]
    keys += ["gateway_us_per_frame", "orchestrator_us_per_token"]
    cells = []
    for r in rows:
        failed = "" if r["fixed_passed"] else " (failed)"
        cells.append([table.figure(r[k]) + (failed if k == "p99_ms" else "") for k in keys])
    return table.grid(HEADER, cells, markdown)


def sweep(windows: list[float], rates: list[float], quick: bool, args: argparse.Namespace) -> dict[str, Any]:
    rows, rigs, runs = [], {}, []
    for rate in rates:
        plan = plan_for(quick, rate)
        print(f"rig ceiling at {rate:g} tokens/s:", flush=True)
        rig = measure_rig(plan)
        rigs[f"{rate:g}"] = rig
        for window in windows:
            print(f"project, window {window:g} ms, {rate:g} tokens/s:", flush=True)
            env = {**cli.service_env(args), "PAM_CHUNK_WINDOW_MS": f"{window:g}"}
            project = measure_project(plan, Setup(cli.server_options(args), env=env))
            rows.append(row(window, plan, project, rig["max_conversations"]))
            runs.append({"window_ms": window, "rate": rate, "project": project})
            print(render(rows[-1:]), flush=True)
    return {"rows": rows, "rigs": rigs, "runs": runs}


def numbers(text: str) -> list[float]:
    return [float(item) for item in text.split(",") if item]


def main() -> None:
    parser = cli.parser(__doc__.splitlines()[0])
    parser.add_argument("--windows", default=WINDOWS, help=f"chunk windows in ms (default {WINDOWS})")
    parser.add_argument("--rates", default=RATES, help=f"tokens/s (default {RATES})")
    args = parser.parse_args()
    raise_open_files_limit()
    load_before = results.load_average()
    found = sweep(numbers(args.windows), numbers(args.rates), args.quick, args)
    options = cli.server_options(args)
    path = results.write(
        args.name or "chunk_window",
        {
            "title": "the chunk window swept: scenario 2 at each window and token rate",
            "quick": args.quick,
            "options": {"label": options.label, **resolved(options), "service_env": cli.service_env(args)},
            "load_before": load_before,
            "load_after": results.load_average(),
            **found,
        },
    )
    print("\n" + render(found["rows"]))
    print(f"\n(load average {load_before} -> {results.load_average()})\n{path}")


if __name__ == "__main__":
    main()
