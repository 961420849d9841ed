"""Run every scenario of issue 7, each beside its yardstick, and print one table.

    python -m bench.run            # full (make bench)
    python -m bench.run --quick    # under 3 minutes (make bench-quick)
    python -m bench.run --servers  # uvicorn ws/loop/http implementations on scenarios 1 and 3
    python -m bench.run --only 1,3 --profile

Each scenario is its own process (``python -m bench.<scenario>``) writing
``bench/results/<name>.json``; this runner reads their ``checks`` back.  Scenario 2 runs
twice, at 50 tokens/s (its targets) and at 150 (reported: models stream faster now).  Scenario 4
(persistence ingest) is ``bench/persistence_ingest.py``, called through its command line.
The table and every scenario's figures go to ``summary.json`` (full runs of everything; kept
in git), ``summary-quick.json``, ``summary-partial.json`` (``--only``) or ``server_variants.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench import backing, exclusive, results, table
from bench.procs import ROOT
from bench.server_options import ServerOptions

PERSISTENCE_SCRIPT = ROOT / "bench" / "persistence_ingest.py"
STOP_SECONDS = 30.0


@dataclass(frozen=True)
class Scenario:
    number: str
    name: str
    argv: tuple[str, ...]


SCENARIOS = (
    Scenario("1", "throughput", ("-m", "bench.throughput")),
    Scenario("2", "streaming", ("-m", "bench.streaming")),
    Scenario("2", "streaming-150", ("-m", "bench.streaming", "--rate", "150")),
    Scenario("3", "idle", ("-m", "bench.idle")),
    Scenario("4", "persistence_ingest", (str(PERSISTENCE_SCRIPT),)),
    Scenario("5", "latency", ("-m", "bench.latency")),
)


def run_scenario(scenario: Scenario, flags: list[str], timeout: float) -> dict[str, Any]:
    """Run one scenario's process; return its results, or why there are none."""
    if scenario.number == "4" and not PERSISTENCE_SCRIPT.exists():
        return {"scenario": "4", "missing": f"{PERSISTENCE_SCRIPT.relative_to(ROOT)} is not there yet"}
    started = time.time()
    print(f"\n== scenario {scenario.number}: {scenario.name} {' '.join(flags)}", flush=True)
    code = run_bounded([sys.executable, *scenario.argv, *flags], timeout)
    found = fresh_results(scenario, started)
    if found is None:
        return {"scenario": scenario.number, "missing": f"no results (exit {code})"}
    return {**found, "seconds": round(time.time() - started)}


def run_bounded(argv: list[str], timeout: float) -> int | str:
    """Run to the end or until ``timeout``; then SIGTERM (the scenario stops its services), then SIGKILL."""
    proc = subprocess.Popen(argv, cwd=ROOT)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
    try:
        proc.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return "timeout"


def fresh_results(scenario: Scenario, since: float) -> dict[str, Any] | None:
    """The newest results file the scenario wrote during this run (any name starting with its own)."""
    written = [p for p in results.RESULTS.glob(f"{scenario.name}*.json") if p.stat().st_mtime >= since]
    if not written:
        return None
    newest = max(written, key=lambda p: p.stat().st_mtime)
    payload = json.loads(newest.read_text())
    if "checks" not in payload:
        payload["checks"] = persistence_checks(payload)
    return {"scenario": scenario.number, **payload, "file": newest.name}


def persistence_checks(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Scenario 4 writes its own shape: drained rows/s against a raw COPY of the same rows
    (results from before ``answer`` events have no ``rows_per_second``: one row per event).

    Its script refuses to write results when a row is lost, so results mean zero lost.  The
    steady lag's bound is one batch (``PAM_PERSIST_BATCH_SIZE`` events, a quarter second of the
    full run's 2,000 events/s): a writer keeping up holds the batch it writes and what arrives
    meanwhile, well under a batch; a full batch waiting means it fell behind.
    """
    try:
        batch = payload["options"]["batch_size"]
        raw = payload["yardsticks"]["copy (raw, no conflict check)"][f"batch {batch}"]
        drained = payload["backlog"].get("rows_per_second", payload["backlog"]["written_per_second"])
        lag = payload["steady"]["lag_max"]
    except (KeyError, TypeError):
        return [results.check("results in an unknown shape", None, None, ">= 0.5x raw COPY", False)]
    versus = results.ratio(drained, raw)
    return [
        results.check("rows/s drained vs raw COPY", drained, raw, ">= 0.5x", (versus or 0) >= 0.5, versus),
        results.check("steady consumer lag max (events)", lag, None, f"<= {batch} (1 batch)", lag <= batch),
    ]


def scenario_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--quick"] if args.quick else []
    return flags + (["--profile"] if args.profile else [])


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    wanted = set(args.only.split(",")) if args.only else {s.number for s in SCENARIOS}
    timeout = 240.0 if args.quick else 1800.0
    done = []
    for scenario in SCENARIOS:
        if scenario.number in wanted:
            flags = [f for f in scenario_flags(args) if scenario.number != "4" or f == "--quick"]
            done.append(run_scenario(scenario, flags, timeout))
    return done


VARIANTS = (
    ServerOptions(ws="websockets-sansio", loop="uvloop", http="httptools"),
    ServerOptions(ws="websockets", loop="uvloop", http="httptools"),
    ServerOptions(ws="wsproto", loop="uvloop", http="httptools"),
    ServerOptions(ws="websockets-sansio", loop="asyncio", http="httptools"),
    ServerOptions(ws="websockets-sansio", loop="uvloop", http="h11"),
)


def run_variants(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Scenarios 1 and 3 once per uvicorn implementation set; missing libraries are skipped."""
    done = []
    for options in VARIANTS:
        label = options.label.replace(" ", "_").replace("=", "-")
        if options.ws == "wsproto" and importlib.util.find_spec("wsproto") is None:
            print(f"skipping {label}: uv pip install --python .venv/bin/python wsproto", flush=True)
            continue
        flags = [f"--{key}={value}" for key, value in options.uvicorn_kwargs().items()]
        for scenario in (s for s in SCENARIOS if s.number in ("1", "3")):
            named = Scenario(scenario.number, f"{scenario.name}-{label}", scenario.argv)
            extra = ["--quick"] if args.quick else []
            done.append({**run_scenario(named, [*flags, *extra, f"--name={named.name}"], 900.0), "variant": label})
    return done


def summary_name(args: argparse.Namespace) -> str:
    """``summary.json`` is only ever the latest full run's (it is committed, so quoted numbers can be
    checked); quick, partial and server-variant runs write beside it."""
    if args.servers:
        return "server_variants"
    if args.quick:
        return "summary-quick"
    return "summary-partial" if args.only else "summary"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="comma-separated scenario numbers, e.g. 1,3")
    parser.add_argument("--profile", action="store_true", help="py-spy the services in scenarios 1 and 2")
    parser.add_argument("--servers", action="store_true", help="compare uvicorn implementations instead")
    args = parser.parse_args()
    exclusive.hold()
    started, load_before = time.time(), results.load_average()
    with backing.servers() as notes:
        for note in notes:
            print(note, flush=True)
        done = run_variants(args) if args.servers else run_all(args)
    summary = {"quick": args.quick, "load_before": load_before, "load_after": results.load_average()}
    summary |= {"seconds": round(time.time() - started), "servers": notes, "scenarios": done}
    path = results.write(summary_name(args), summary)
    print("\n" + (table.variants(done) if args.servers else table.render(done, summary)))
    print(f"\nresults: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
