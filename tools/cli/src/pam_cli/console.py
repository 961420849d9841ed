"""What the user sees: one line per event, led by the seed's markers (🔌 📤 📨 ✅ ❌)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec


def say(marker: str, text: str, *, err: bool = False) -> None:
    """Print one line at once, so lines interleave with streamed chunks in arrival order."""
    print(f"{marker} {text}", file=sys.stderr if err else sys.stdout, flush=True)


def write(text: str) -> None:
    """Print without a newline: streamed chunks continue the current line."""
    sys.stdout.write(text)
    sys.stdout.flush()


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, as wide as their widest cell."""
    lines = [headers, *rows]
    widths = [max(len(cell) for cell in column) for column in zip(*lines, strict=True)]
    return "\n".join("  ".join(map(str.ljust, line, widths)).rstrip() for line in lines)


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``, ``4d03h``: uptimes at a glance."""
    whole = max(int(seconds), 0)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def since(started: str) -> str:
    """How long ago an RFC 3339 timestamp (``$SRV.STATS``'s ``started``) was; ``?`` if unreadable."""
    try:
        moment = msgspec.convert(started, datetime)
    except msgspec.ValidationError:
        return "?"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return duration((datetime.now(UTC) - moment).total_seconds())
