"""Checking that what must stay private (message texts, tokens, keys, locations) reached no
process's output and no metric: ``assert_nothing_leaked(stack.processes, forbidden, metrics_urls)``.

Matching ignores case (a place name may be printed lowercased) and looks at every line each
process printed since it started, so call it once the lines of interest have been printed.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx

from support.processes import ServiceProcess


def leaks(processes: Iterable[ServiceProcess], forbidden: Iterable[str], metrics_urls: Iterable[str] = ()) -> list[str]:
    """Every printed line and every metrics sample holding one of ``forbidden``, named by its source."""
    wanted = [text.lower() for text in forbidden if text]
    found = []
    for process in processes:
        found += [f"{process.name}: {line}" for line in list(process.lines) if _holds(line, wanted)]
    for url in metrics_urls:
        samples = httpx.get(url, timeout=5).text.splitlines()
        found += [f"{url}: {line}" for line in samples if not line.startswith("#") and _holds(line, wanted)]
    return found


def assert_nothing_leaked(
    processes: Iterable[ServiceProcess], forbidden: Iterable[str], metrics_urls: Iterable[str] = ()
) -> None:
    """Fail with the offending lines if any process printed, or any metric carries, a forbidden string."""
    processes = list(processes)
    assert all(p.lines for p in processes), "a process printed nothing: there is nothing to check"
    found = leaks(processes, forbidden, metrics_urls)
    assert not found, "private data in logs or metrics:\n" + "\n".join(found)


def _holds(line: str, wanted: list[str]) -> bool:
    lowered = line.lower()
    return any(text in lowered for text in wanted)
