"""The orchestrator's Prometheus metrics, served on ``PAM_METRICS_PORT``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from pam_orchestrator.answer import Outcome
from pam_orchestrator.breaker import Breaker

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)

requests = Counter("pam_orchestrator_requests_total", "Chats answered, by intent", ["intent"])
first_token = Histogram("pam_orchestrator_llm_first_token_seconds", "LLM time to first token", buckets=LATENCY_BUCKETS)
llm_total = Histogram("pam_orchestrator_llm_seconds", "LLM time for a whole answer", buckets=LATENCY_BUCKETS)
tokens = Counter("pam_orchestrator_tokens_total", "Tokens the model reported", ["direction"])
llm_errors = Counter("pam_orchestrator_llm_errors_total", "Failed answers, by kind", ["kind"])
chunks_skipped = Counter(
    "pam_orchestrator_llm_chunks_skipped_total", "Events of the model's stream the reader could not read and skipped"
)
offline_answers = Counter("pam_orchestrator_offline_answers_total", "Answers from the offline engine")
inflight = Gauge("pam_orchestrator_inflight_requests", "Answers being produced right now")
endpoint_failures = Counter(
    "pam_orchestrator_llm_endpoint_failures_total", "Failed requests to a model endpoint, by kind", ["endpoint", "kind"]
)
breaker_state = Gauge(
    "pam_orchestrator_llm_breaker_state",
    "A model endpoint's circuit breaker: 0 closed, 1 half-open, 2 open",
    ["endpoint"],
)
answered_by = Counter(
    "pam_orchestrator_llm_answers_total", "Answers, by the model endpoint that gave them", ["endpoint"]
)
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


def watch_breaker(endpoint: str, breaker: Breaker) -> None:
    """Read the breaker's state at each scrape (it moves from open to half-open with time alone)."""
    breaker_state.labels(endpoint).set_function(lambda: BREAKER_STATES[breaker.state])


def record(outcome: Outcome, engine: str) -> None:
    requests.labels(outcome.intent).inc()
    if outcome.error_code is not None:
        llm_errors.labels(outcome.error_kind or outcome.error_code).inc()
        return
    if engine == "offline":
        offline_answers.inc()
        return
    llm_total.observe(outcome.total_ms / 1000)
    if outcome.first_chunk_ms is not None:
        first_token.observe(outcome.first_chunk_ms / 1000)
    if outcome.source is not None:
        answered_by.labels(outcome.source.endpoint).inc()
    if outcome.usage is not None:
        tokens.labels("in").inc(outcome.usage.tokens_in or 0)
        tokens.labels("out").inc(outcome.usage.tokens_out or 0)
        tokens.labels("cached").inc(outcome.usage.cached_tokens or 0)
