"""The model endpoints' circuit breaker, on a clock the test moves."""

from __future__ import annotations

from pam_orchestrator.breaker import Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_it_opens_after_consecutive_failures_and_a_success_resets_the_count():
    clock = Clock()
    breaker = Breaker(failures=3, cooldown=30, clock=clock)
    for _ in range(2):
        assert breaker.take()
        breaker.failed()
    breaker.succeeded()
    for _ in range(2):
        breaker.failed()
    assert breaker.state == "closed" and breaker.take()
    breaker.failed()
    assert breaker.state == "open" and not breaker.take() and breaker.retry_in == 30


def test_after_the_cool_down_one_chat_probes_and_its_verdict_decides():
    clock = Clock()
    breaker = Breaker(failures=1, cooldown=10, clock=clock)
    breaker.failed()
    clock.now += 10
    assert breaker.state == "half_open"
    assert breaker.take() and not breaker.take()  # one probe at a time
    breaker.failed()
    assert breaker.state == "open" and not breaker.take()
    clock.now += 10
    assert breaker.take()
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.take() and breaker.take()


def test_a_probe_stopped_without_a_verdict_lets_the_next_chat_probe():
    clock = Clock()
    breaker = Breaker(failures=1, cooldown=5, clock=clock)
    breaker.failed()
    clock.now += 5
    assert breaker.take()
    breaker.released()
    assert breaker.state == "half_open" and breaker.take()


def test_retry_after_keeps_chats_away_even_while_closed():
    clock = Clock()
    breaker = Breaker(failures=5, cooldown=5, clock=clock)
    breaker.failed(retry_after=20)
    assert breaker.state == "closed" and not breaker.take() and breaker.retry_in == 20
    clock.now += 20
    assert breaker.take()
    breaker.failed(retry_after=10**9)
    assert breaker.retry_in == 600  # believed for ten minutes at most
