"""Percentiles and summaries of measured samples."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (``q`` in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary(values: Sequence[float], digits: int = 2) -> dict[str, float]:
    """Count, mean, p50, p90, p99 and max, rounded for the JSON results."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0}
    return {
        "count": len(ordered),
        "mean": round(sum(ordered) / len(ordered), digits),
        "p50": round(percentile(ordered, 50), digits),
        "p90": round(percentile(ordered, 90), digits),
        "p99": round(percentile(ordered, 99), digits),
        "max": round(ordered[-1], digits),
    }
