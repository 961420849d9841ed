"""The cut-over: PAM and the existing backend behind one host, through a real nginx.

nginx (Debian's, ``apt-get install nginx``) runs deploy/nginx's routing with two gateways
and a stand-in for the old backend as its upstreams: the shipped client's socket and REST
calls reach PAM, every other path the old backend, the gateways see each client's own
address, and a quiet socket outlives nginx's default 60 s read timeout.
"""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from support.nginx import DEPLOY, NGINX, Nginx, OldBackend
from support.tokens import token
from support.wheels_client import ShippedClient, rest_chat

pytestmark = pytest.mark.skipif(not NGINX.exists(), reason=f"no nginx at {NGINX} (apt-get install nginx)")

USER = "6c5b4a39-2817-4f6e-9d5c-4b3a29180f7e"
SITE = "https://wheelsandwins.com"
PROXIED = {"PAM_TRUSTED_PROXIES": "127.0.0.1/32", "PAM_ALLOWED_ORIGINS": SITE}


@pytest.fixture
def old_backend():
    with OldBackend() as running:
        yield running


@pytest.fixture
def host(stack, llm_env, old_backend, tmp_path):
    """One orchestrator, two gateways and the old backend, behind one nginx."""

    def start(**gateway_env: str) -> Nginx:
        stack.orchestrator(**llm_env)
        gateways = [stack.gateway(**PROXIED, **gateway_env) for _ in range(2)]
        proxy = Nginx(tmp_path / "nginx", [g.port for g in gateways], old_backend.port)
        started.append(proxy.start())
        return proxy

    started: list[Nginx] = []
    yield start
    for proxy in started:
        proxy.stop()


async def test_the_shipped_clients_socket_and_rest_reach_pam_and_everything_else_the_old_backend(host, old_backend):
    proxy = host()
    client = await ShippedClient.connect(proxy.url("ws"), USER, token(USER))
    try:
        welcome = await client.frame()
        answer = await client.ask("plan a trip to Cairns")
    finally:
        await client.close()
    over_rest = await rest_chat(proxy.url("http"), USER, token(USER), "and the fuel?")
    async with httpx.AsyncClient(base_url=proxy.url("http")) as http:
        health = await http.get("/api/v1/pam/health")
        voice = await http.post("/api/v1/pam/voice", json={"text": "Hello."}, headers={"Origin": SITE})
        receipt = await http.post("/api/v1/receipts/ocr", content=b"%PDF")
        savings = await http.get("/api/v1/pam/savings/recent")  # the old backend's, under PAM's prefix
        page = await http.get("/")
    assert welcome["type"] == "connection" and welcome["status"] == "connected"
    assert answer["type"] == "chat_response" and answer["content"] == "Echo: plan a trip to Cairns"
    assert over_rest.status_code == 200 and over_rest.json()["response"] == "Echo: and the fuel?"
    assert health.json()["service"] == "PAM"
    assert voice.status_code == 200 and voice.json()["audio"][:4] == list(b"RIFF")
    assert receipt.json() == {"backend": "old", "path": "/api/v1/receipts/ocr"}
    assert savings.json() == {"backend": "old", "path": "/api/v1/pam/savings/recent"}
    assert page.json()["backend"] == "old"
    assert old_backend.seen == ["POST /api/v1/receipts/ocr", "GET /api/v1/pam/savings/recent", "GET /"]


async def test_per_ip_limits_see_each_clients_own_address_behind_nginx(host):
    proxy = host(PAM_VOICE_PER_IP_PER_MINUTE="1")

    async def speak(source: str) -> int:
        transport = httpx.AsyncHTTPTransport(local_address=source)
        async with httpx.AsyncClient(transport=transport, base_url=proxy.url("http"), timeout=30) as http:
            reply = await http.post("/api/v1/pam/voice", json={"text": f"From {source}."}, headers={"Origin": SITE})
            return reply.status_code

    first, again, other = await speak("127.0.0.2"), await speak("127.0.0.2"), await speak("127.0.0.3")
    assert (first, again) == (200, 429)  # one a minute for that address, on either gateway
    assert other == 200  # another address: its own budget, though nginx connects from one


@pytest.mark.timeout(150)
async def test_a_quiet_socket_outlives_nginxs_default_read_timeout(host):
    proxy = host()
    client = await ShippedClient.connect(proxy.url("ws"), USER, token(USER))
    try:
        await client.frame()
        quiet_since = time.monotonic()
        await asyncio.sleep(65)  # the client says nothing for longer than nginx's default 60 s
        await client.ping()
        pong = await client.frame(10)
    finally:
        await client.close()
    assert time.monotonic() - quiet_since > 60
    assert pong["type"] == "pong"


def test_every_route_of_pam_is_sent_to_the_gateways_and_only_those():
    """The routing regex, against the gateway's paths and some of the old backend's."""
    pattern = re.search(r"location ~ (\S+) \{", (DEPLOY / "pam-locations.conf").read_text())
    assert pattern is not None
    ours = [
        "/api/v1/pam/ws/u1",
        "/api/v1/pam-simple/ws/u1",
        "/api/v1/pam/ws",
        "/ws/u1",
        "/api/v1/pam/chat",
        "/api/v1/pam-simple/chat",
        "/api/v1/pam/voice",
        "/api/v1/pam-simple/voice",
        "/api/v1/pam/health",
        "/api/v1/pam-simple/health",
        "/api/v1/pam/timers",
        "/api/v1/pam/timers/0123abcd",
        "/api/v1/pam/internal/dismiss-timer",
    ]
    theirs = ["/api/v1/pam/savings/recent", "/api/v1/pam/chat/extra", "/api/v1/receipts/ocr", "/", "/api/health"]
    regex = re.compile(pattern.group(1))
    assert [p for p in ours if not regex.fullmatch(p)] == []
    assert [p for p in theirs if regex.fullmatch(p)] == []
