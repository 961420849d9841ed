"""Sampling a service with py-spy while a scenario runs, and naming where its time went.

py-spy is a development tool, not a dependency: ``uv tool install py-spy`` (survives
``uv sync``, which removes anything the lock does not list) or
``uv pip install --python .venv/bin/python py-spy``.  Without it profiling is skipped.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from bench.procs import BIN, Child
from bench.results import RESULTS

RATE = 100
_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^:]+)(?::\d+)?\)$")


def executable() -> str | None:
    """py-spy from the venv, PATH, or uv's tool directory."""
    for candidate in (BIN / "py-spy", Path.home() / ".local/bin/py-spy"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("py-spy")


def available() -> bool:
    return executable() is not None


Spies = dict[str, tuple[Child, Path]]


def record(pids: dict[str, int], seconds: float, prefix: str) -> Spies:
    """Start py-spy on each named process (none if py-spy is missing); files go to bench/results/."""
    if not available():
        return {}
    spies = {}
    for name, pid in pids.items():
        out = RESULTS / f"{prefix}-{name}.txt"
        spies[name] = (start(name, pid, seconds, out), out)
    return spies


def collect(spies: Spies, seconds: float) -> dict[str, Any]:
    """Wait for each py-spy to write its file, then summarise it."""
    found = {}
    for name, (spy, out) in spies.items():
        spy.wait(timeout=15)
        if out.exists():
            found[name] = summarize(out, seconds)
    return found


def start(name: str, pid: int, seconds: float, out: Path) -> Child:
    """Record ``pid`` for ``seconds`` (non-blocking sampling, GIL-idle frames left out)."""
    argv = [executable() or "py-spy", "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    argv += ["--rate", str(RATE), "--format", "raw", "--nonblocking", "--output", str(out)]
    return Child(f"py-spy-{name}", argv).start()


def _short(frame: str) -> str:
    """``send (websockets/legacy/protocol.py:123)`` -> ``send (websockets/legacy/protocol.py)``."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['fn']} ({path})"


def summarize(path: Path, seconds: float, top: int = 15) -> dict[str, Any]:
    """Busy share of one core, and the top frames by own time and by inclusive time."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        count = int(match[2])
        frames = [_short(f) for f in match[1].split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def pct(count: int) -> float:
        return round(100 * count / total, 1)

    return {
        "samples": total,
        "busy_share_of_one_core": round(total / (RATE * seconds), 2),
        "top_own_pct": [[frame, pct(count)] for frame, count in own.most_common(top)],
        "top_inclusive_pct": [[frame, pct(count)] for frame, count in inclusive.most_common(top)],
    }
