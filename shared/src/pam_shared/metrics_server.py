"""Serving a service's Prometheus metrics on their own port, never on a public one."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

from pam_shared import logs

log = logging.getLogger("pam.metrics")


def serve_metrics(port: int, host: str) -> None:
    """Start the exporter thread; a busy port costs the metrics, never the service."""
    if port == 0:
        log.info("metrics disabled (PAM_METRICS_PORT=0)")
        return
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.warning("metrics not served on port %d: %s", port, exc, extra={"marker": logs.ERROR})
        return
    log.info("metrics on http://%s:%d/metrics", host, port, extra={"marker": logs.OK})
