"""The tables people read: one row per check of every scenario, and the server-variant comparison.

``python -m bench.table [--markdown] [bench/results/summary.json]`` prints them again from the
JSON a run wrote (``--markdown`` for docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.results import RESULTS


def figure(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def grid(header: list[str], rows: list[list[str]], markdown: bool = False) -> str:
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in [header, *rows]]
        lines.insert(1, "|" + "---|" * len(header))
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in [header, *rows]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def render(scenarios: list[dict[str, Any]], summary: dict[str, Any], markdown: bool = False) -> str:
    """Scenario, metric, project, yardstick, ratio, target, met; one row per check."""
    rows = []
    for result in scenarios:
        number = result["scenario"]
        if "missing" in result:
            rows.append([number, "-", "MISSING: " + result["missing"], "", "", "", ""])
            continue
        for check in result.get("checks", []):
            met = "yes" if check.get("met") else "NO"
            cells = [check.get(k) for k in ("project", "yardstick", "ratio")]
            rows.append([number, check["metric"], *map(figure, cells), str(check.get("target", "")), met])
    header = ["#", "metric", "project", "yardstick", "ratio", "target", "met"]
    mode = "quick" if summary["quick"] else "full"
    load = f"load average {summary['load_before']} -> {summary['load_after']}"
    return f"{grid(header, rows, markdown)}\n\n({mode} run, {summary['seconds']} s, {load})"


def variants(done: list[dict[str, Any]], markdown: bool = False) -> str:
    """Per uvicorn implementation set: scenario 1's msg/s and p99 and scenario 3's KB per socket."""
    by_variant: dict[str, dict[str, Any]] = {}
    for result in done:
        by_variant.setdefault(result["variant"], {})[result["scenario"]] = result
    rows = []
    for variant, found in by_variant.items():
        one, three = found.get("1", {}), found.get("3", {})
        project, yard = one.get("project", {}), one.get("yardstick", {})
        figures = [
            project.get("messages_per_s"),
            project.get("latency_ms", {}).get("p99"),
            project.get("cpu_us_per_message", {}).get("gateway"),
            yard.get("messages_per_s"),
            yard.get("streamed", {}).get("messages_per_s"),
            yard.get("streamed", {}).get("cpu_us_per_message", {}).get("relay"),
            three.get("project", {}).get("kb_per_connection"),
            three.get("yardstick", {}).get("kb_per_connection"),
        ]
        rows.append([variant, *map(figure, figures)])
    header = ["variant", "1: msg/s", "1: p99 ms", "1: gw us/msg", "1: bare msg/s", "1: bare 28-frame msg/s"]
    header += ["1: bare 28-frame us/msg", "3: KB/conn", "3: echo KB/conn"]
    return grid(header, rows, markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=RESULTS / "summary.json")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    summary = json.loads(args.path.read_text())
    scenarios = summary["scenarios"]
    if scenarios and "variant" in scenarios[0]:
        print(variants(scenarios, args.markdown))
    else:
        print(render(scenarios, summary, args.markdown))


if __name__ == "__main__":
    main()
