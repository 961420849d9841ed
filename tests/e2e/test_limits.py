"""Rate and connection limits: answered with clear errors or 4429, never at anyone else's cost."""

from __future__ import annotations

import asyncio
import time

from support.client import connected, refused
from support.tokens import token


async def test_a_message_flood_is_rate_limited_and_the_socket_stays_open(stack):
    stack.orchestrator()
    gateway = stack.gateway(PAM_RATE_BURST="5", PAM_RATE_PER_SECOND="1")
    async with await connected(gateway.ws_url("/ws/u?token=demo-token")) as client:
        for _ in range(12):
            await client.send({"type": "ping"})
        replies = [await client.recv() for _ in range(12)]
        assert [r["type"] for r in replies[:5]] == ["pong"] * 5
        limited = replies[5:]
        assert all(r["code"] == "rate_limited" for r in limited)
        assert all(0 < r["details"]["retry_after"] <= 1 for r in limited)
        await asyncio.sleep(limited[-1]["details"]["retry_after"])  # the client honours retry_after
        await client.send({"type": "ping"})
        assert (await client.recv())["type"] == "pong"


async def test_per_user_message_limit_holds_across_gateways(stack):
    """Two gateways share one per-user budget through the JetStream key-value bucket."""
    into_minute = time.time() % 60
    if into_minute > 50:  # budgets are per clock minute: start this test inside one
        await asyncio.sleep(60 - into_minute)
    stack.orchestrator()
    limits = {"PAM_USER_MESSAGES_PER_MINUTE": "6", "PAM_RATE_BURST": "100"}
    first, second = stack.gateway(**limits), stack.gateway(**limits)
    user_token = token("busy-user")
    a = await connected(first.ws_url(f"/ws/busy-user?token={user_token}"))
    b = await connected(second.ws_url(f"/ws/busy-user?token={user_token}"))
    try:
        for _ in range(3):
            assert (await a.chat("hello", "busy-user"))[-1]["type"] == "chat_response"
        outcomes = []
        for attempt in range(4):
            frames = await b.chat(f"hello {attempt}", "busy-user")
            outcomes.append(frames[-1].get("code", frames[-1]["type"]))
        assert outcomes == ["chat_response"] * 3 + ["rate_limited"]  # 6 a minute, wherever they land
        assert frames[-1]["details"]["retry_after"] > 0
        other = await connected(second.ws_url(f"/ws/other?token={token('other')}"))
        assert (await other.chat("my turn", "other"))[-1]["type"] == "chat_response"
        await other.close()
    finally:
        await a.close()
        await b.close()


async def test_too_many_sockets_for_one_user_closes_the_extra_one_with_4429(stack):
    gateway = stack.gateway(PAM_MAX_SOCKETS_PER_USER="2")
    url = gateway.ws_url(f"/ws/u1?token={token('u1')}")
    first, second = await connected(url), await connected(url)
    frame, code = await refused(url)
    assert (frame["code"], code) == ("connection_limited", 4429)
    await first.close()
    third = await connected(url)  # a slot freed up
    for client in (second, third):
        await client.close()


async def test_connection_attempts_per_ip_are_limited_with_4429(stack):
    gateway = stack.gateway(PAM_IP_CONNECTS_PER_MINUTE="3")
    for _ in range(3):
        client = await connected(gateway.ws_url("/ws/u?token=demo-token"))
        await client.close()
    frame, code = await refused(gateway.ws_url("/ws/u?token=demo-token"))
    assert (frame["code"], code) == ("connection_limited", 4429)


def forwarded(client_ip: str, peer: str = "127.0.0.1") -> dict:
    """Connect from ``peer`` (any loopback address) with an ``X-Forwarded-For`` naming ``client_ip``."""
    return {"additional_headers": {"X-Forwarded-For": client_ip}, "local_addr": (peer, 0)}


async def test_a_forged_forwarded_for_does_not_escape_the_ip_limit_when_no_proxy_is_trusted(stack):
    gateway = stack.gateway(PAM_IP_CONNECTS_PER_MINUTE="2")
    url = gateway.ws_url("/ws/u?token=demo-token")
    for i in range(2):
        await (await connected(url, **forwarded(f"203.0.113.{i}"))).close()
    frame, code = await refused(url, **forwarded("203.0.113.99"))
    assert (frame["code"], code) == ("connection_limited", 4429)


async def test_clients_behind_a_trusted_proxy_get_their_own_ip_budgets(stack):
    gateway = stack.gateway(PAM_IP_CONNECTS_PER_MINUTE="2", PAM_TRUSTED_PROXIES="127.0.0.2, 10.0.0.0/8")
    url = gateway.ws_url("/ws/u?token=demo-token")
    for _ in range(2):
        await (await connected(url, **forwarded("203.0.113.1", peer="127.0.0.2"))).close()
    frame, code = await refused(url, **forwarded("203.0.113.1", peer="127.0.0.2"))
    assert (frame["code"], code) == ("connection_limited", 4429)
    await (await connected(url, **forwarded("203.0.113.2", peer="127.0.0.2"))).close()  # another client
    for i in range(2):  # a peer that is not a trusted proxy is counted as itself, whatever it claims
        await (await connected(url, **forwarded(f"198.51.100.{i}"))).close()
    frame, code = await refused(url, **forwarded("198.51.100.9"))
    assert (frame["code"], code) == ("connection_limited", 4429)
