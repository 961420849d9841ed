"""The gateway's Prometheus metrics, served on ``PAM_METRICS_PORT`` like every service's."""

from __future__ import annotations

from pam_shared.protocol import CLIENT_TYPES, SERVER_TYPES
from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

connections_open = Gauge("pam_gateway_connections_open", "Open sockets", ["mode"])
connections_opened = Counter("pam_gateway_connections_opened_total", "Sockets opened", ["mode"])
connections_closed = Counter("pam_gateway_connections_closed_total", "Sockets closed, by close code", ["code"])
frames_in = Counter("pam_gateway_frames_in_total", "Frames received, by type", ["type"])
frames_out = Counter("pam_gateway_frames_out_total", "Frames sent, by type", ["type"])
errors = Counter("pam_gateway_errors_total", "Error frames the gateway raised, by code", ["code"])
refused = Counter("pam_gateway_sockets_refused_total", "Sockets turned away, by reason", ["reason"])
rate_limited = Counter("pam_gateway_rate_limited_total", "Frames or sockets refused by a limit", ["limit"])
first_chunk = Histogram(
    "pam_gateway_first_chunk_seconds", "From a chat's arrival to its first reply frame", buckets=LATENCY_BUCKETS
)
answer = Histogram("pam_gateway_answer_seconds", "From a chat's arrival to its final frame", buckets=LATENCY_BUCKETS)

_frames_in = {t: frames_in.labels(t) for t in (*CLIENT_TYPES, "invalid")}
_frames_out = {t: frames_out.labels(t) for t in (*SERVER_TYPES, "other")}


def count_in(frame_type: str) -> None:
    _frames_in.get(frame_type, _frames_in["invalid"]).inc()


def count_out(frame: bytes | str) -> None:
    """Count an outgoing frame by the ``type`` its JSON starts with (no decoding)."""
    text = frame if isinstance(frame, str) else frame.decode()
    start = text.find('"type":"') + 8
    kind = text[start : text.find('"', start)] if start >= 8 else "other"
    _frames_out.get(kind, _frames_out["other"]).inc()
