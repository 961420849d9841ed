"""Health endpoints: liveness needs nothing; readiness proves the NATS path; the detailed view
lists every instance and degrades when a kind of service is missing."""

from __future__ import annotations

import httpx
from pam_devstack.embedded import EmbeddedNats


def test_liveness_needs_no_dependencies(stack):
    gateway = stack.gateway()
    response = httpx.get(gateway.http_url("/api/health"))
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_detailed_health_lists_instances_and_degrades_while_a_kind_is_missing(stack, database_url):
    gateway = stack.gateway()
    degraded = httpx.get(gateway.http_url("/api/health/detailed"))
    body = degraded.json()
    assert degraded.status_code == 503 and body["status"] == "degraded"
    assert body["nats"]["connected"] is True and body["orchestrators"] == [] and body["persistence"] == []

    stack.orchestrator(PAM_INSTANCE_ID="orch-a")
    stack.orchestrator(PAM_INSTANCE_ID="orch-b")
    assert httpx.get(gateway.http_url("/api/health/detailed")).status_code == 503  # still no persistence
    stack.persistence(DATABASE_URL=database_url, PAM_INSTANCE_ID="store-1")
    healthy = httpx.get(gateway.http_url("/api/health/detailed"))
    body = healthy.json()
    assert healthy.status_code == 200 and body["status"] == "healthy"
    assert sorted(o["metadata"]["instance"] for o in body["orchestrators"]) == ["orch-a", "orch-b"]
    assert [p["metadata"]["instance"] for p in body["persistence"]] == ["store-1"]
    assert all(o["version"] and o["started"] for o in body["orchestrators"])
    assert body["uptime_seconds"] >= 0 and body["connections"]["open"] == 0

    for process in stack.processes[1:3]:
        process.stop()
    assert httpx.get(gateway.http_url("/api/health/detailed")).json()["orchestrators"] == []


def test_a_gateway_without_nats_is_alive_but_not_ready(stack, tmp_path):
    nats_server = EmbeddedNats(tmp_path / "nats")
    nats_server.start()
    try:
        gateway = stack.gateway(NATS_URL=nats_server.url)
        ready = httpx.get(gateway.http_url("/api/health/ready"))
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "nats": True, "reply_subscription": True, "background_tasks": True}
    finally:
        nats_server.stop()
    gateway.wait_for("NATS disconnected")
    not_ready = httpx.get(gateway.http_url("/api/health/ready"), timeout=5)
    assert not_ready.status_code == 503 and not_ready.json()["status"] == "not_ready"
    assert httpx.get(gateway.http_url("/api/health")).status_code == 200
