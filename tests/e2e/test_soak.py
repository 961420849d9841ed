"""The soak in miniature: chats keep being answered, once each, through drops, a deploy and a dead worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.processes import ROOT

SOAK_TIMEOUT_SECONDS = 240


@pytest.mark.timeout(SOAK_TIMEOUT_SECONDS + 120)
def test_a_small_soak_loses_nothing_and_answers_nothing_twice(nats_url: str, tmp_path: Path) -> None:
    """Slow streamed answers (fake LLM), so drops land mid-answer and the killed worker has answers in flight."""
    report_path = tmp_path / "soak.json"
    argv = [
        *("--clients", "5", "--duration", "15", "--chaos", "gateway,orchestrator-kill", "--drop-every", "4"),
        *("--llm", "fake", "--nats-url", nats_url, "--json", str(report_path), "--log-dir", str(tmp_path)),
    ]
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts/soak.py"), *argv],
        capture_output=True,
        text=True,
        timeout=SOAK_TIMEOUT_SECONDS,
        cwd=ROOT,
    )
    assert report_path.exists(), f"the soak wrote no report:\n{run.stdout}\n{run.stderr}"
    report = json.loads(report_path.read_text())
    chats, connections = report["chats"], report["connections"]
    assert chats["sent"] > 0 and connections["reconnects"] > 0 and connections["own_drops"] > 0
    assert report["restarts"] == {"gateway": 1, "orchestrator-term": 0, "orchestrator-kill": 1}
    evidence = json.dumps(report["lost_chats"] + report["duplicated_chats"], indent=1)
    assert (chats["lost"], chats["duplicated"]) == (0, 0), f"{run.stdout}\n{evidence}"
    assert run.returncode == 0, run.stderr
