"""The OpenAI engine against real loopback model servers: what its breakers learn from an answer."""

from __future__ import annotations

from collections.abc import Callable

from pam_orchestrator.engine import Source
from pam_orchestrator.llm import OpenAIEngine
from pam_shared.internal import ChatRequest
from pam_shared.protocol import ChatContext
from pam_shared.settings import ModelEndpoint, ModelSettings


def engine(*urls: str, failures: int = 1, cooldown: float = 60) -> OpenAIEngine:
    endpoints = tuple(ModelEndpoint(f"e{i}", url, "fake-model", "sk-test", 5.0) for i, url in enumerate(urls))
    return OpenAIEngine(ModelSettings(endpoints, 0, 256, 30.0, failures, cooldown))


def chat(message: str) -> ChatRequest:
    return ChatRequest("c1", "s1", "u1", False, message, ChatContext(), 0.0)


async def test_an_answer_stopped_part_way_is_no_verdict_on_its_endpoint(fake_openais: Callable[..., str]):
    llm = engine(fake_openais())
    breaker = llm.endpoints[0].breaker
    breaker.failed()  # open, with the cool-down over: the next chat is the one probe
    breaker.cooldown = 0
    assert breaker.state == "half_open"
    stream = llm.stream(chat("[gap:0.05] [words:50] a long story"), "general", [])
    pieces = [await anext(stream) for _ in range(3)]
    assert isinstance(pieces[0], Source) and pieces[1:] == ["w1 ", "w2 "]
    await stream.aclose()  # what the user's stop does to the engine's stream
    assert breaker.failures == 1 and breaker.state == "half_open" and breaker.take()  # still to be probed
    await llm.close()


async def test_a_finished_answer_closes_the_breaker_and_a_failed_one_counts(fake_openais: Callable[..., str]):
    llm = engine(fake_openais("--status", "503"), fake_openais(), failures=2)
    pieces = [piece async for piece in llm.stream(chat("hello"), "general", [])]
    sources = [p.endpoint for p in pieces if isinstance(p, Source)]
    assert sources == ["e0", "e1"] and "".join(p for p in pieces if isinstance(p, str)) == "Echo: hello"
    first, second = (e.breaker for e in llm.endpoints)
    assert (first.failures, first.state) == (1, "closed") and (second.failures, second.state) == (0, "closed")
    await llm.close()
