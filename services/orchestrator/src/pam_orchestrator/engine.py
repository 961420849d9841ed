"""What every answering engine (OpenAI, offline) provides."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import msgspec
from pam_shared.internal import ChatRequest
from pam_shared.protocol import UiAction


class Usage(msgspec.Struct):
    """Tokens the model reported for one answer."""

    tokens_in: int | None
    tokens_out: int | None


Piece = str | list[UiAction] | Usage
"""An engine yields text deltas, at most once a list of UI actions, and maybe its usage."""


class EngineFailure(Exception):
    """The engine could not answer; ``kind`` says why (rate_limited, server_error, timeout ...)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Engine(Protocol):
    name: str
    model: str | None

    def stream(self, request: ChatRequest, intent: str, history: list[dict[str, str]]) -> AsyncIterator[Piece]:
        """Yield the answer as it is produced."""
        ...
