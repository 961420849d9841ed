"""Live sockets through token expiry, deploys, dying workers, slow clients and pushes."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import nats
import pytest
import websockets
from pam_shared.subjects import Subjects
from support.client import connected
from support.tokens import token


async def test_expiry_is_warned_then_enforced_with_4401(stack):
    gateway = stack.gateway(PAM_TOKEN_WARNING_SECONDS="2", PAM_JWT_LEEWAY_SECONDS="0")
    async with await connected(gateway.ws_url(f"/ws/u1?token={token('u1', ttl=3)}")) as client:
        warning = await client.recv(timeout=5)
        expired = await client.recv(timeout=5)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await client.recv()
    assert (warning["code"], expired["code"], closed.value.rcvd.code) == ("token_expiring", "token_expired", 4401)
    assert warning["details"]["expires_at"] > time.time() - 5


async def test_a_refreshed_token_keeps_the_socket_open_past_the_old_expiry(stack):
    gateway = stack.gateway(PAM_TOKEN_WARNING_SECONDS="2", PAM_JWT_LEEWAY_SECONDS="0")
    old_expiry = time.time() + 3
    async with await connected(gateway.ws_url(f"/ws/u1?token={token('u1', ttl=3)}")) as client:
        assert (await client.recv(timeout=5))["code"] == "token_expiring"
        await client.send({"type": "auth", "token": token("someone-else")})
        assert (await client.recv())["code"] == "user_mismatch"
        await client.send({"type": "auth", "token": token("u1", ttl=3600)})
        refreshed = await client.recv()
        assert refreshed["type"] == "connection" and refreshed["message"] == "Token refreshed"
        assert refreshed["expires_at"] > time.time() + 3000
        await asyncio.sleep(max(0.0, old_expiry - time.time()) + 0.5)  # the old token is now dead
        await client.send({"type": "ping"})
        assert (await client.recv())["type"] == "pong"


async def test_gateway_sigterm_warns_lets_the_answer_finish_then_closes_with_1012(stack, llm_env):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        await client.send({"type": "chat", "message": "[say:one two three four five six seven eight] [gap:0.25]"})
        first = await client.recv()
        assert first["type"] == "chat_chunk"
        gateway.signal(signal.SIGTERM)
        frames = [first]
        while True:
            try:
                frames.append(await client.recv())
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code
                break
    notice = next(f for f in frames if f["type"] == "connection")
    assert notice["status"] == "disconnected" and notice["reason"] == "server_restart"
    final = next(f for f in frames if f["type"] == "chat_response")
    assert final["message"] == "one two three four five six seven eight"
    assert code == 1012


async def test_orchestrator_sigterm_finishes_in_flight_answers_and_takes_no_new_ones(stack, llm_env):
    leaving = stack.orchestrator(**llm_env, PAM_INSTANCE_ID="leaving")
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        await client.send({"type": "chat", "message": "[say:still here after the signal] [gap:0.3]"})
        assert (await client.recv())["type"] == "chat_chunk"
        leaving.signal(signal.SIGTERM)
        frames = await client.answer()
        assert frames[-1]["message"] == "still here after the signal"
        assert leaving.proc.wait(10) == 0
        stack.orchestrator(**llm_env, PAM_INSTANCE_ID="next")
        assert (await client.chat("after the deploy"))[-1]["type"] == "chat_response"


async def test_a_worker_killed_before_streaming_is_retried_on_another(stack, llm_env):
    fast_failover = {"PAM_PROGRESS_INTERVAL_SECONDS": "0.3"}
    doomed = stack.orchestrator(**llm_env, **fast_failover, PAM_INSTANCE_ID="doomed")
    gateway = stack.gateway(PAM_REPLY_TIMEOUT_SECONDS="1.5")
    async with await connected(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        await client.send({"type": "chat", "message": "[delay:3] are you there"})
        doomed.wait_for("chat received")
        stack.orchestrator(**llm_env, **fast_failover, PAM_INSTANCE_ID="rescuer")
        doomed.kill()
        frames = await client.answer(timeout=20)
    assert frames[-1]["type"] == "chat_response" and frames[-1]["message"] == "Echo: are you there"


async def test_a_worker_killed_mid_stream_is_replaced_and_the_answer_starts_over(stack, llm_env):
    doomed = stack.orchestrator(**llm_env, PAM_PROGRESS_INTERVAL_SECONDS="0.3", PAM_CHUNK_WINDOW_MS="0")
    gateway = stack.gateway(PAM_REPLY_TIMEOUT_SECONDS="1.5")
    words = " ".join(f"w{i}" for i in range(30))
    async with await connected(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        await client.send({"type": "chat", "message": f"[say:{words}] [gap:0.3]"})
        assert (await client.recv())["type"] == "chat_chunk"
        stack.orchestrator(**llm_env, PAM_CHUNK_WINDOW_MS="0", PAM_INSTANCE_ID="rescuer")
        doomed.kill()
        frames = await client.answer(timeout=30)
    restarts = [i for i, f in enumerate(frames) if f.get("restart")]
    assert frames[-1]["type"] == "chat_response" and frames[-1]["message"] == words
    assert len(restarts) == 1 and frames[restarts[0]]["seq"] == 0
    assert "".join(f["delta"] for f in frames[restarts[0] : -1]) == words


async def test_a_worker_killed_mid_stream_with_no_other_ends_the_answer_clearly(stack, llm_env):
    doomed = stack.orchestrator(**llm_env, PAM_PROGRESS_INTERVAL_SECONDS="0.3")
    gateway = stack.gateway(PAM_REPLY_TIMEOUT_SECONDS="1.5")
    async with await connected(gateway.ws_url(f"/ws/u1?token={token('u1')}")) as client:
        await client.send({"type": "chat", "message": "[say:a b c d e f g h i j k l] [gap:0.3]"})
        assert (await client.recv())["type"] == "chat_chunk"
        doomed.kill()
        started = time.monotonic()
        frames = await client.answer(timeout=10)
    assert frames[-1]["type"] == "error" and frames[-1]["code"] == "orchestrator_unavailable"
    assert time.monotonic() - started < 5


async def test_a_client_that_stops_reading_is_cut_off_with_1013(stack, llm_env):
    # A frame per word, 4000 words an answer: megabytes the kernel can't buffer, even one answer at a time.
    stack.orchestrator(**llm_env, PAM_CHUNK_WINDOW_MS="0", PAM_MAX_COMPLETION_TOKENS="5000")
    gateway = stack.gateway(PAM_SEND_QUEUE_BYTES="65536", PAM_RATE_BURST="1000", PAM_USER_MESSAGES_PER_MINUTE="1000")
    long_answer = "[say:" + "word " * 4000 + "]"
    ws = await websockets.connect(gateway.ws_url(f"/ws/u1?token={token('u1')}"), max_queue=1, compression=None)
    try:
        for _ in range(30):  # answers pile up in the gateway while we read nothing
            await ws.send(json.dumps({"type": "chat", "message": long_answer}))
        gateway.wait_for("slow consumer", timeout=30)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is None or closed.value.rcvd.code == 1013
    finally:
        await ws.close()
    gateway.wait_for("socket closed", timeout=10)  # logged once the close is done, maybe after we see it


async def test_a_push_to_the_user_subject_reaches_every_socket_of_that_user(stack, nats_url, namespace):
    gateways = [stack.gateway(), stack.gateway()]
    mine = [await connected(g.ws_url(f"/ws/u1?token={token('u1')}")) for g in gateways]
    theirs = await connected(gateways[0].ws_url(f"/ws/u2?token={token('u2')}"))
    push = {"type": "ui_actions", "actions": [{"type": "navigate", "target": "/budget", "data": None}]}
    nc = await nats.connect(nats_url)
    try:
        await nc.publish(Subjects(namespace).user("u1"), b'{"type": "not a frame"}')
        await nc.publish(Subjects(namespace).user("u1"), json.dumps(push).encode())
        await nc.flush()
        for client in mine:
            received = await client.recv()
            assert received["type"] == "ui_actions" and received["actions"] == push["actions"]
        await theirs.send({"type": "ping"})
        assert (await theirs.recv())["type"] == "pong"  # u2 got nothing before its pong
    finally:
        await nc.close()
        for client in (*mine, theirs):
            await client.close()
