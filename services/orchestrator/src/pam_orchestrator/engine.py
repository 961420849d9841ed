"""What every answering engine (OpenAI, offline) provides."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal, Protocol

import msgspec
from pam_shared.internal import ChatRequest
from pam_shared.protocol import UiAction


class Usage(msgspec.Struct):
    """Tokens the model reported for one answer."""

    tokens_in: int | None
    tokens_out: int | None
    cached_tokens: int | None = None
    """Of ``tokens_in``, how many the provider read from its prompt cache (``prompt_tokens_details``)."""


class Cut(msgspec.Struct):
    """The answer stops here, short of what the model meant to say (see ``ChatResponse.truncated``)."""

    reason: Literal["length", "deadline", "content_filter"]


Piece = str | list[UiAction] | Usage | Cut
"""An engine yields text deltas, at most once a list of UI actions, maybe its usage, maybe a cut."""


class EngineFailure(Exception):
    """The engine could not answer; ``kind`` says why (rate_limited, server_error, timeout ...)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Engine(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def model(self) -> str | None: ...

    def stream(self, request: ChatRequest, intent: str, history: list[dict[str, str]]) -> AsyncIterator[Piece]:
        """Yield the answer as it is produced."""
        ...
