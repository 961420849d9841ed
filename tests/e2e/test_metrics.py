"""Prometheus metrics move as chats, errors and limits happen."""

from __future__ import annotations

import httpx
import nats
from pam_shared.subjects import Subjects
from support.client import PamClient
from support.metrics import scrape, value
from support.processes import free_port
from support.tokens import token


async def test_gateway_metrics_count_connections_frames_errors_and_latency(stack):
    stack.orchestrator()
    port = free_port()
    gateway = stack.gateway(PAM_RATE_BURST="3", PAM_RATE_PER_SECOND="0.1", PAM_METRICS_PORT=str(port))
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    async with await PamClient.connect(gateway.ws_url("/ws/u?token=demo-token&reconnect_attempts=2")) as client:
        await client.recv()
        during = scrape(metrics_url)
        assert value(during, "pam_gateway_connections_open", mode="demo") == 1
        chunks = len(await client.chat("hello", "u"))
        await client.send("{broken")
        await client.recv()
        await client.send({"type": "ping"})
        assert (await client.recv())["type"] == "pong"
        await client.send({"type": "ping"})  # the fourth frame overdraws a burst of three
        limited = await client.recv()
    assert limited["code"] == "rate_limited"
    gateway.wait_for("socket closed")
    after = scrape(metrics_url)
    assert value(after, "pam_gateway_connections_open", mode="demo") == 0
    assert value(after, "pam_gateway_connections_opened_total", mode="demo") == 1
    assert value(after, "pam_gateway_connections_closed_total", code="1000") == 1
    assert value(after, "pam_gateway_frames_in_total", type="chat") == 1
    assert value(after, "pam_gateway_frames_in_total", type="ping") == 1
    assert value(after, "pam_gateway_frames_in_total", type="invalid") == 1
    assert value(after, "pam_gateway_frames_out_total", type="chat_chunk") == chunks - 1
    assert value(after, "pam_gateway_frames_out_total", type="chat_response") == 1
    assert value(after, "pam_gateway_errors_total", code="invalid_json") == 1
    assert value(after, "pam_gateway_rate_limited_total", limit="socket") == 1
    assert value(after, "pam_gateway_first_chunk_seconds_count") == 1
    assert value(after, "pam_gateway_answer_seconds_count") == 1
    assert 0 < value(after, "pam_gateway_answer_seconds_sum") < 5
    closing = next(line for line in gateway.lines if "socket closed" in line)
    assert "4 messages, 2 errors, 2 reconnect attempts" in closing


def test_the_gateway_keeps_its_metrics_off_its_public_port(stack):
    port = free_port()
    gateway = stack.gateway(PAM_METRICS_PORT=str(port))
    assert httpx.get(gateway.http_url("/metrics"), timeout=5).status_code == 404
    assert "pam_gateway_connections_open" in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


async def test_orchestrator_metrics_count_intents_llm_timings_and_errors(stack, llm_env):
    port = free_port()
    stack.orchestrator(**llm_env, PAM_METRICS_PORT=str(port), PAM_OPENAI_MAX_RETRIES="0")
    gateway = stack.gateway()
    async with await PamClient.connect(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        await client.recv()
        await client.chat("cheap diesel near Dubbo?", "u1")
        await client.chat("plan my route [status:500]", "u1")
    samples = scrape(f"http://127.0.0.1:{port}/metrics")
    assert value(samples, "pam_orchestrator_requests_total", intent="fuel") == 1
    assert value(samples, "pam_orchestrator_requests_total", intent="trip") == 1
    assert value(samples, "pam_orchestrator_llm_first_token_seconds_count") == 1
    assert value(samples, "pam_orchestrator_llm_seconds_count") == 1
    assert value(samples, "pam_orchestrator_llm_errors_total", kind="server_error") == 1
    assert value(samples, "pam_orchestrator_inflight_requests") == 0


async def test_persistence_metrics_count_written_events_batches_and_dead_letters(
    stack, database_url, nats_url, namespace
):
    port = free_port()
    persistence = stack.persistence(DATABASE_URL=database_url, PAM_METRICS_PORT=str(port))
    stack.orchestrator()
    gateway = stack.gateway()
    async with await PamClient.connect(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        await client.recv()
        await client.chat("log 12 dollars for bait", "u1")
    nc = await nats.connect(nats_url)
    await nc.jetstream().publish(Subjects(namespace).event("user_message", "u1"), b"not an event")
    await nc.close()
    persistence.wait_for("parking event")
    persistence.wait_for("stored answer event")
    samples = scrape(f"http://127.0.0.1:{port}/metrics")
    for kind in ("user_message", "answer"):  # an answer is one event: its message and its analytics
        assert value(samples, "pam_persistence_events_written_total", kind=kind) == 1
    assert value(samples, "pam_persistence_dead_lettered_total") == 1
    assert value(samples, "pam_persistence_batch_size_count") >= 1
    assert value(samples, "pam_persistence_write_seconds_count") >= 1
    assert value(samples, "pam_persistence_consumer_lag") == 0
