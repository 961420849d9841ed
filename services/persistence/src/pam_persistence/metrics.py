"""Persistence's Prometheus metrics, served on ``PAM_METRICS_PORT``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

events_written = Counter("pam_persistence_events_written_total", "Events committed to PostgreSQL, by kind", ["kind"])
batch_size = Histogram(
    "pam_persistence_batch_size", "Events per transaction", buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000)
)
write_seconds = Histogram(
    "pam_persistence_write_seconds",
    "Time to write and commit one batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
consumer_lag = Gauge("pam_persistence_consumer_lag", "Events waiting in the stream behind the last batch pulled")
dead_lettered = Counter("pam_persistence_dead_lettered_total", "Events parked in dead_letters")
erasures = Counter("pam_persistence_erasures_total", "Users erased (every place their data lived)")
retention_rows_removed = Counter(
    "pam_persistence_retention_rows_removed_total", "Rows retention deleted for their age, by table", ["table"]
)
