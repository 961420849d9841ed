"""The OpenAI engine: a streamed chat completion with tools.

The official SDK sends the request (auth, base URL, retries, status errors as its error
types); its raw streaming response is read by ``completions``, not by the SDK's typed stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import cast

import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
from pam_shared import tracing
from pam_shared.internal import ChatRequest
from pam_shared.settings import OrchestratorSettings

from pam_orchestrator import completions, prompt, tools
from pam_orchestrator.completions import Chunk, ContentPart
from pam_orchestrator.engine import Cut, EngineFailure, Piece, Usage
from pam_orchestrator.toolcalls import ToolCalls

log = logging.getLogger("pam.orchestrator.llm")


CUTS = {"length": Cut("length"), "content_filter": Cut("content_filter")}
"""Finish reasons that end the answer short of what the model meant to say."""


@dataclass
class _Heard:
    """What the model has streamed so far, besides the pieces already passed on."""

    calls: ToolCalls = field(default_factory=ToolCalls)
    said: bool = False
    cut: Cut | None = None

    def read(self, chunk: Chunk) -> list[Piece]:
        """The pieces one chunk carries; tool-call fragments and a cut are kept for the end."""
        if chunk.error is not None or chunk.message is not None:
            _fail_on(chunk)
        found: list[Piece] = []
        if (usage := chunk.usage) is not None:
            found.append(Usage(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens))
        for choice in chunk.choices:
            if (delta := choice.delta) is not None:  # Azure's filter annotations come without one
                if text := _text(delta.content):
                    self.said = True
                    found.append(text)
                for call in delta.tool_calls or ():
                    self.calls.add(call)
            if choice.finish_reason in CUTS:
                self.cut = CUTS[choice.finish_reason]
        return found

    def ending(self) -> list[Piece]:
        """The actions, then the cut; a cut before anything was said is a failure, not an empty answer."""
        actions = self.calls.actions()
        if self.cut is None:
            return [actions] if actions else []
        if not (self.said or actions):
            raise EngineFailure("timeout" if self.cut.reason == "deadline" else self.cut.reason)
        log.info("answer cut short: %s", self.cut.reason)
        return [actions, self.cut] if actions else [self.cut]


def _fail_on(chunk: Chunk) -> None:
    """Raise the failure the chunk carries, if it carries one (its message is the provider's, not the user's)."""
    error = completions.stream_error(chunk)
    if error is not None:
        kind = completions.failure_kind(error)
        log.warning("the model's stream ended in an error (%s, code %s): %s", kind, error.code, error.message)
        raise EngineFailure(kind)


def _text(content: str | list[ContentPart] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(part.text for part in content if part.type == "text" and part.text)


class OpenAIEngine:
    name = "openai"

    def __init__(self, settings: OrchestratorSettings) -> None:
        self.model = settings.openai_model
        self.max_tokens = settings.max_completion_tokens
        self.deadline_seconds = settings.answer_deadline_seconds
        self.client = openai.AsyncOpenAI(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            timeout=settings.openai_timeout_seconds,
            max_retries=settings.openai_max_retries,
        )

    async def stream(self, request: ChatRequest, intent: str, history: list[dict[str, str]]) -> AsyncIterator[Piece]:
        """The answer as it streams; past the deadline it ends with what was said (or fails, if nothing was)."""
        deadline = asyncio.get_running_loop().time() + self.deadline_seconds
        heard = _Heard()
        try:
            async with contextlib.AsyncExitStack() as stack:
                async with asyncio.timeout_at(deadline):
                    response = await stack.enter_async_context(self._open(request, intent, history))
                reads = await stack.enter_async_context(contextlib.aclosing(completions.events(response.http_response)))
                while True:
                    async with asyncio.timeout_at(deadline):  # never around a yield: it would cancel our reader
                        chunks = await anext(reads, None)
                    if chunks is None:
                        break
                    for chunk in chunks:
                        for piece in heard.read(chunk):
                            yield piece
        except openai.APIError as exc:
            raise EngineFailure(_kind(exc)) from exc
        except TimeoutError:
            heard.cut = Cut("deadline")
        for piece in heard.ending():
            yield piece

    def _open(
        self, request: ChatRequest, intent: str, history: list[dict[str, str]]
    ) -> AbstractAsyncContextManager[openai.AsyncAPIResponse[openai.AsyncStream[ChatCompletionChunk]]]:
        """The request, sent on entering; a status error (after the SDK's retries) raises there."""
        # History roles come from our own records ("user"/"assistant"), so the messages fit the SDK's type.
        messages = cast("list[ChatCompletionMessageParam]", prompt.messages(request, intent, history))
        return self.client.chat.completions.with_streaming_response.create(
            model=self.model,
            messages=messages,
            tools=tools.TOOLS,
            max_completion_tokens=self.max_tokens,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=_trace_headers(),
        )

    async def close(self) -> None:
        await self.client.close()


def _trace_headers() -> dict[str, str]:
    """Carry the chat's trace to the LLM provider, as a new span of the same trace."""
    parent = tracing.current_traceparent.get()
    return {tracing.TRACEPARENT: tracing.child_traceparent(parent)} if parent else {}


def _kind(exc: openai.APIError) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited"
    if isinstance(exc, openai.APIStatusError):
        return "server_error" if exc.status_code >= 500 else f"http_{exc.status_code}"
    return "api_error"
