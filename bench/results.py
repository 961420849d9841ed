"""Results of a scenario: the JSON written under bench/results/, and the machine they came from.

Every scenario writes ``bench/results/<name>.json`` shaped as

    {"scenario", "title", "quick", "finished_at", "machine", "load_before", "load_after",
     "options", "project": {...}, "yardstick": {...}, "checks": [Check, ...], "notes": [...]}

and ``bench.run`` reads the ``checks`` to print one table.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("uvicorn", "websockets", "uvloop", "httptools", "wsproto", "nats-py", "msgspec", "starlette", "openai")


def check(
    metric: str, project: float | None, yardstick: float | None, target: str, met: bool, ratio: float | None = None
) -> dict[str, Any]:
    """One row of the table: a figure of the project, its yardstick, and whether the target holds."""
    return {"metric": metric, "project": project, "yardstick": yardstick, "ratio": ratio, "target": target, "met": met}


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions,
    }


def code_version() -> dict[str, Any]:
    """Which code was measured: HEAD, and the service files changed on top of it (read-only git)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=RESULTS.parent.parent, capture_output=True, text=True, check=False)
        return done.stdout

    changed = git("status", "--porcelain", "--", "services", "shared").splitlines()
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted": [line[3:] for line in changed]}


def write(name: str, payload: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` (with the machine and time added) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    payload = {**payload, "finished_at": stamp, "machine": machine(), "code": code_version()}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
