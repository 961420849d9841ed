"""The shipped WHEELS WINS frontend's client against our gateway, frame for frame."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest
import websockets
from support.jwks_server import JwksServer, SigningKey
from support.tokens import token
from support.wheels_client import ShippedClient, rest_chat

USER = "7d2b6a8e-1c3f-4e5a-9b0d-2f4e6a8c0b1d"
TRIP = '[tool:navigate:{"page": "/trips"}]'


async def requests_for(fake_openai: str, text: str) -> int:
    async with httpx.AsyncClient() as http:
        seen = (await http.get(fake_openai.removesuffix("/v1") + "/_requests")).json()
    return sum(1 for body in seen if text in body["messages"][-1]["content"])


def base(gateway) -> str:
    return gateway.ws_url("")


async def test_connect_and_chat_the_answer_holds_the_text_and_its_ui_actions(stack, llm_env):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    client = await ShippedClient.connect(base(gateway), USER, token(USER))
    try:
        welcome = await client.frame()
        answer = await client.ask(f"plan a trip to Cairns {TRIP}")
    finally:
        await client.close()
    assert welcome["type"] == "connection" and welcome["status"] == "connected"
    assert answer["type"] == "chat_response" and not answer["error"]
    assert answer["content"] == answer["message"] == answer["response"] == "Echo: plan a trip to Cairns"
    assert answer["ui_actions"][0]["target"] == "/trips"
    assert not [f for f in client.seen if f["type"] in ("chat_chunk", "ui_actions")]  # it reads neither


async def test_an_es256_supabase_token_from_a_jwks_opens_a_live_socket(stack):
    key = SigningKey.es256()
    with JwksServer([key]) as supabase:
        stack.orchestrator()
        gateway = stack.gateway(SUPABASE_URL=supabase.supabase_url)
        client = await ShippedClient.connect(base(gateway), USER, key.token(supabase.issuer, sub=USER))
        try:
            welcome = await client.frame()
            answer = await client.ask("how much did I spend on fuel?")
        finally:
            await client.close()
    assert welcome["mode"] == "live" and welcome["user_id"] == USER
    assert answer["type"] == "chat_response" and answer["content"]


@pytest.mark.timeout(150)
async def test_numeric_pings_get_pongs_for_over_a_minute_and_never_an_error(stack):
    gateway = stack.gateway()
    client = await ShippedClient.connect(base(gateway), USER, token(USER))
    try:
        await client.frame()
        started = time.monotonic()
        while time.monotonic() - started < 61:
            await client.ping()
            assert (await client.frame(5))["type"] == "pong"
            await asyncio.sleep(5)  # the client's ping interval, shortened
    finally:
        await client.close()
    assert [f for f in client.seen if f["type"] == "error" or f.get("error")] == []


async def test_a_ping_while_an_answer_streams_does_not_become_the_answer(stack, llm_env):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    client = await ShippedClient.connect(base(gateway), USER, token(USER))
    try:
        await client.frame()
        await client.send_chat("[say:one two three four five six] [gap:0.2]")
        await client.ping()
        answer = await client.answer()
    finally:
        await client.close()
    assert answer["content"] == "one two three four five six"
    assert [f["type"] for f in client.seen[1:]] == ["pong", "chat_response"]


async def test_a_gateway_restart_mid_chat_never_answers_with_the_notice_and_rest_gets_the_real_answer(
    stack, llm_env, fake_openai
):
    stack.orchestrator(**llm_env)
    first = stack.gateway(PAM_SHUTDOWN_GRACE_SECONDS="0.3")
    second = stack.gateway()
    slow = "tell me about the Daintree [delay:3]"
    client = await ShippedClient.connect(base(first), USER, token(USER))
    await client.frame()
    await client.send_chat(slow)
    first.signal(signal.SIGTERM)
    with pytest.raises(websockets.ConnectionClosed):  # the client's answer rule never fires
        await client.answer(timeout=15)
    assert [f for f in client.seen if f.get("message") or f.get("content") or f.get("response")][1:] == []

    response = await rest_chat(second.http_url(""), USER, token(USER), slow)  # its fallback re-sends
    assert response.status_code == 200 and response.json()["response"] == "Echo: tell me about the Daintree"
    assert await requests_for(fake_openai, "Daintree") == 1


async def test_an_expired_token_is_refused_at_the_handshake(stack):
    gateway = stack.gateway()
    with pytest.raises(websockets.InvalidStatus) as refused:
        await ShippedClient.connect(base(gateway), USER, token(USER, ttl=-60))
    assert refused.value.response.status_code == 403  # no onopen: the client's backoff applies
    gateway.wait_for(r"socket refused: token_expired")


async def test_the_rest_fallback_answers_a_chat_already_under_way_once(stack, llm_env, fake_openai):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    slow = "what is the road to Cooktown like? [delay:2]"
    client = await ShippedClient.connect(base(gateway), USER, token(USER))
    try:
        await client.frame()
        await client.send_chat(slow)
        rest = asyncio.create_task(rest_chat(gateway.http_url(""), USER, token(USER), slow))
        answer = await client.answer()
        response = await rest
    finally:
        await client.close()
    assert response.json()["response"] == answer["content"] == "Echo: what is the road to Cooktown like?"
    assert await requests_for(fake_openai, "Cooktown") == 1


@pytest.mark.parametrize(("origin", "allowed"), [("https://wheelsandwins.com", True), ("https://evil.example", False)])
async def test_cors_and_socket_origins_follow_the_allowed_list(stack, origin, allowed):
    gateway = stack.gateway(PAM_ALLOWED_ORIGINS="https://wheelsandwins.com")
    preflight = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with httpx.AsyncClient() as http:
        response = await http.options(gateway.http_url("/api/v1/pam/chat"), headers=preflight)
    assert (response.status_code == 200) is allowed
    assert (response.headers.get("access-control-allow-origin") == origin) is allowed
    try:
        client = await ShippedClient.connect(base(gateway), USER, token(USER), origin=origin)
        await client.close()
        opened = True
    except websockets.InvalidStatus as refused:
        assert refused.response.status_code == 403
        opened = False
    assert opened is allowed


async def test_the_health_endpoint_the_client_checks(stack):
    gateway = stack.gateway()
    async with httpx.AsyncClient() as http:
        response = await http.get(gateway.http_url("/api/v1/pam/health"))
    assert response.status_code == 200 and response.json()["status"] == "healthy"


async def test_in_production_only_listed_pages_and_the_gateways_own_may_open_sockets(stack):
    gateway = stack.gateway(ENVIRONMENT="production", PAM_ALLOWED_ORIGINS="")
    own = gateway.http_url("").rstrip("/")
    client = await ShippedClient.connect(base(gateway), USER, token(USER), origin=own)
    await client.close()
    with pytest.raises(websockets.InvalidStatus):
        await ShippedClient.connect(base(gateway), USER, token(USER), origin="https://wheelsandwins.com")
