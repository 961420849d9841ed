"""``pam-orchestrator``: answer chats from the queue group until told to stop."""

from __future__ import annotations

from pam_shared import lifecycle
from pam_shared.settings import load_orchestrator_settings

from pam_orchestrator.service import Orchestrator


def main() -> None:
    settings = lifecycle.configure("orchestrator", load_orchestrator_settings)
    lifecycle.run(Orchestrator(settings))
