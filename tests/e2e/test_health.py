"""Health endpoints: liveness needs nothing; the detailed view reports the whole path."""

from __future__ import annotations

import httpx


def test_liveness_needs_no_dependencies(stack):
    gateway = stack.gateway()
    response = httpx.get(gateway.http_url("/api/health"))
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_detailed_health_degrades_without_orchestrators_and_recovers_with_one(stack):
    gateway = stack.gateway()
    degraded = httpx.get(gateway.http_url("/api/health/detailed"))
    assert degraded.status_code == 503
    body = degraded.json()
    assert body["status"] == "degraded" and body["nats"]["connected"] is True and body["orchestrators"] == []

    stack.orchestrator(PAM_INSTANCE_ID="solo")
    healthy = httpx.get(gateway.http_url("/api/health/detailed"))
    body = healthy.json()
    assert healthy.status_code == 200 and body["status"] == "healthy"
    assert [o["metadata"]["instance"] for o in body["orchestrators"]] == ["solo"]
    assert body["version"] and body["uptime_seconds"] >= 0 and body["connections"]["open"] == 0
