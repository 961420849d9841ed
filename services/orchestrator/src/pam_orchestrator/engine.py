"""What every answering engine (OpenAI, offline) provides."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

import msgspec
from pam_shared.internal import ChatRequest
from pam_shared.protocol import Truncation, UiAction


class Usage(msgspec.Struct):
    """Tokens the model reported for one answer."""

    tokens_in: int | None
    tokens_out: int | None
    cached_tokens: int | None = None
    """Of ``tokens_in``, how many the provider read from its prompt cache (``prompt_tokens_details``)."""


class Cut(msgspec.Struct):
    """The answer stops here, short of what the model meant to say (see ``ChatResponse.truncated``)."""

    reason: Truncation


class Source(msgspec.Struct):
    """The endpoint an engine is asking now; the last one yielded is the one that answered."""

    endpoint: str
    model: str


Piece = str | list[UiAction] | Usage | Cut | Source
"""An engine yields text deltas, at most once a list of UI actions, maybe its usage, maybe a cut,
and (the OpenAI engine) the endpoint it is trying before it tries it."""


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

    def stream(self, request: ChatRequest, intent: str, history: list[dict[str, str]]) -> AsyncGenerator[Piece]:
        """Yield the answer as it is produced."""
        ...
