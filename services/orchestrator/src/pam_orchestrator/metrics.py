"""The orchestrator's Prometheus metrics, served on ``PAM_METRICS_PORT``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from pam_orchestrator.answer import Outcome

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
    if outcome.usage is not None:
        tokens.labels("in").inc(outcome.usage.tokens_in or 0)
        tokens.labels("out").inc(outcome.usage.tokens_out or 0)
