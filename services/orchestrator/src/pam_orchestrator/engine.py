"""What every answering engine (OpenAI, offline) provides."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from pam_shared.internal import ChatRequest
from pam_shared.protocol import UiAction

Piece = str | list[UiAction]
"""An engine yields text deltas, and at most once a list of UI actions."""


class EngineFailure(Exception):
    """The engine could not answer; ``kind`` says why (rate_limited, server_error, timeout ...)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Engine(Protocol):
    name: str

    def stream(self, request: ChatRequest, intent: str, history: list[dict[str, str]]) -> AsyncIterator[Piece]:
        """Yield the answer as it is produced."""
        ...
