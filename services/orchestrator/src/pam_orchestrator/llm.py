"""The OpenAI engine: a streamed chat completion with tools, through the official SDK."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import openai
from pam_shared import tracing
from pam_shared.internal import ChatRequest
from pam_shared.protocol import UiAction
from pam_shared.settings import Settings

from pam_orchestrator import prompt, tools
from pam_orchestrator.engine import EngineFailure, Piece, Usage

log = logging.getLogger("pam.orchestrator.llm")


@dataclass
class _ToolCall:
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAIEngine:
    name = "openai"

    def __init__(self, settings: Settings) -> None:
        self.model = settings.openai_model
        self.client = openai.AsyncOpenAI(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            timeout=settings.openai_timeout_seconds,
            max_retries=settings.openai_max_retries,
        )

    async def stream(self, request: ChatRequest, intent: str, history: list[dict[str, str]]) -> AsyncIterator[Piece]:
        calls: dict[int, _ToolCall] = {}
        try:
            response = await self.client.chat.completions.create(
                model=self.model,
                messages=prompt.messages(request, intent, history),  # type: ignore[arg-type]
                tools=tools.TOOLS,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
                extra_headers=_trace_headers(),
            )
            async for chunk in response:
                if chunk.usage is not None:
                    yield Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta.content:
                        yield delta.content
                    for call in delta.tool_calls or ():
                        _collect(calls.setdefault(call.index, _ToolCall()), call)
        except openai.APIError as exc:
            raise EngineFailure(_kind(exc)) from exc
        actions = _actions(calls)
        if actions:
            yield actions

    async def close(self) -> None:
        await self.client.close()


def _trace_headers() -> dict[str, str]:
    """Carry the chat's trace to the LLM provider, as a new span of the same trace."""
    parent = tracing.current_traceparent.get()
    return {tracing.TRACEPARENT: tracing.child_traceparent(parent)} if parent else {}


def _collect(target: _ToolCall, call: object) -> None:
    function = getattr(call, "function", None)
    if function is None:
        return
    if function.name:
        target.name = function.name
    if function.arguments:
        target.arguments.append(function.arguments)


def _actions(calls: dict[int, _ToolCall]) -> list[UiAction]:
    found = (tools.to_action(c.name, "".join(c.arguments)) for _, c in sorted(calls.items()))
    return [action for action in found if action is not None]


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
