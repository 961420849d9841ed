"""The OpenAI engine: a streamed chat completion with tools, from the first healthy endpoint.

The official SDK sends the request (auth, base URL, status errors as its error types); its
raw streaming response is read by ``completions``, not by the SDK's typed stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import time
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import cast

import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
from pam_shared import tracing
from pam_shared.discovery import EndpointHealth
from pam_shared.internal import ChatRequest
from pam_shared.settings import ModelEndpoint, ModelSettings

from pam_orchestrator import completions, metrics, prompt, tools
from pam_orchestrator.breaker import Breaker
from pam_orchestrator.completions import Chunk, ContentPart
from pam_orchestrator.engine import Cut, EngineFailure, Piece, Source, Usage
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


@dataclass
class _Endpoint:
    spec: ModelEndpoint
    client: openai.AsyncOpenAI
    breaker: Breaker


class OpenAIEngine:
    """Asks the model endpoints in order: the first healthy one that starts answering answers.

    Before the first word, a failure moves the chat to the next endpoint unseen (and, when all
    failed, for ``retries`` more rounds after a short pause); after it, the answer ends with
    what was said, marked ``truncated: "error"``.  Each endpoint has a circuit breaker.
    """

    name = "openai"

    def __init__(self, models: ModelSettings) -> None:
        self.max_tokens = models.max_completion_tokens
        self.deadline_seconds = models.answer_deadline_seconds
        self.retries = models.retries
        self.endpoints = [
            _Endpoint(spec, _client(spec), Breaker(models.breaker_failures, models.breaker_cooldown_seconds))
            for spec in models.endpoints
        ]
        for endpoint in self.endpoints:
            metrics.watch_breaker(endpoint.spec.name, endpoint.breaker)

    @property
    def model(self) -> str:
        return self.endpoints[0].spec.model

    async def stream(self, request: ChatRequest, intent: str, history: list[dict[str, str]]) -> AsyncGenerator[Piece]:
        """The answer as it streams, from the first endpoint that gives one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline_seconds
        # History roles come from our own records ("user"/"assistant"), so the messages fit the SDK's type.
        messages = cast("list[ChatCompletionMessageParam]", prompt.messages(request, intent, history))
        failure = EngineFailure("unavailable")
        for attempt in range(self.retries + 1):
            if attempt:
                if failure.kind not in _RETRIED or loop.time() + RETRY_PAUSE_SECONDS >= deadline:
                    break
                await asyncio.sleep(RETRY_PAUSE_SECONDS * attempt)
            for endpoint in self.endpoints:
                if loop.time() >= deadline:
                    raise EngineFailure("timeout")
                if not endpoint.breaker.take():
                    continue
                said = settled = False
                try:
                    yield Source(endpoint.spec.name, endpoint.spec.model)
                    async for piece in self._ask(endpoint, messages, deadline):
                        said = said or isinstance(piece, str | list)
                        yield piece
                    endpoint.breaker.succeeded()
                    settled = True
                    return
                except EngineFailure as exc:
                    settled = _judge(endpoint, exc)
                    if said:
                        log.warning("model endpoint %s failed part-way: %s", endpoint.spec.name, exc.kind)
                        yield Cut("error")
                        return
                    log.warning("model endpoint %s failed before answering: %s", endpoint.spec.name, exc.kind)
                    failure = exc
                finally:
                    if not settled:  # the answer was stopped: no verdict on the endpoint
                        endpoint.breaker.released()
        raise failure

    async def _ask(
        self, endpoint: _Endpoint, messages: list[ChatCompletionMessageParam], deadline: float
    ) -> AsyncGenerator[Piece]:
        """One endpoint's answer; past the deadline it ends with what was said (or fails, if nothing was)."""
        heard = _Heard()
        try:
            async with contextlib.AsyncExitStack() as stack:
                async with asyncio.timeout_at(deadline):
                    response = await stack.enter_async_context(self._open(endpoint, messages))
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
        self, endpoint: _Endpoint, messages: list[ChatCompletionMessageParam]
    ) -> AbstractAsyncContextManager[openai.AsyncAPIResponse[openai.AsyncStream[ChatCompletionChunk]]]:
        """The request, sent on entering; a status error raises there."""
        return endpoint.client.chat.completions.with_streaming_response.create(
            model=endpoint.spec.model,
            messages=messages,
            tools=tools.TOOLS,
            max_completion_tokens=self.max_tokens,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=_trace_headers(),
        )

    def health(self) -> list[EndpointHealth]:
        """Each endpoint's breaker, for ``$SRV.STATS`` and so ``/api/health/detailed``."""
        return [
            EndpointHealth(
                name=e.spec.name,
                model=e.spec.model,
                state=e.breaker.state,
                failures=e.breaker.failures,
                retry_in_seconds=round(e.breaker.retry_in, 1),
            )
            for e in self.endpoints
        ]

    async def close(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.client.close()


RETRY_PAUSE_SECONDS = 0.5
_RETRIED = frozenset({"server_error", "connection", "timeout", "api_error"})
"""Failures worth another round over the endpoints; a rate limit or a refused request is not."""
_NOT_THE_PROVIDERS = frozenset({"http_400", "http_413", "http_422", "length", "content_filter"})
"""Failures of this request, not of the endpoint: the breaker does not count them."""


def _client(spec: ModelEndpoint) -> openai.AsyncOpenAI:
    # No SDK retries: they would wait out a Retry-After (up to a minute) that the next endpoint need not.
    return openai.AsyncOpenAI(api_key=spec.api_key, base_url=spec.base_url, timeout=spec.timeout_seconds, max_retries=0)


def _judge(endpoint: _Endpoint, failure: EngineFailure) -> bool:
    """Tell the endpoint's breaker about a failure that was the provider's; True when it was told."""
    metrics.endpoint_failures.labels(endpoint.spec.name, failure.kind).inc()
    if failure.kind in _NOT_THE_PROVIDERS:
        return False
    endpoint.breaker.failed(_retry_after(failure.__cause__))
    return True


def _retry_after(exc: BaseException | None) -> float | None:
    """The provider's ``Retry-After`` (seconds, or an HTTP date) or ``retry-after-ms``, if it sent one."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    with contextlib.suppress(ValueError):
        if millis := headers.get("retry-after-ms"):
            return max(0.0, float(millis) / 1000)
        if value := headers.get("retry-after"):
            return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(headers.get("retry-after", ""))
        return max(0.0, when.timestamp() - time.time())
    return None


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
