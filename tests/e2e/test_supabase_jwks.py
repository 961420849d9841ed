"""Sign-in as Supabase issues it today: ES256 tokens checked against the project's JWKS."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pam_shared.settings import DEV_JWT_SECRET
from support.client import PamClient, chat_frame, refused
from support.jwks_server import JwksServer, SigningKey
from support.persistence import count, until
from support.tokens import token


@pytest.fixture
def supabase() -> Iterator[JwksServer]:
    with JwksServer([SigningKey.es256()]) as server:
        yield server


async def test_an_es256_token_opens_a_live_socket_and_reads_the_api(stack, database_url, db, supabase):
    stack.persistence(DATABASE_URL=database_url)
    stack.orchestrator()
    gateway = stack.gateway(SUPABASE_URL=supabase.supabase_url)
    key = supabase.keys[0]
    token = key.token(supabase.issuer, sub="ana")
    async with await PamClient.connect(gateway.ws_url(f"/ws/ana?token={token}")) as client:
        hello = await client.recv()
        assert (hello["type"], hello["mode"], hello["user_id"]) == ("connection", "live", "ana")
        await client.send(chat_frame("I spent $40 on diesel", "ana"))
        assert (await client.answer())[-1]["type"] == "chat_response"
        await client.send({"type": "auth", "token": key.token(supabase.issuer, sub="ana", ttl=7200)})
        assert (await client.recv())["message"] == "Token refreshed"
    await until(lambda: count(db, "messages"), lambda n: n == 2)

    async with httpx.AsyncClient(base_url=gateway.http_url(""), timeout=10) as http:
        listed = await http.get("/api/v1/conversations", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200
        assert [c["preview"] for c in listed.json()["conversations"]] == ["I spent $40 on diesel"]
        elsewhere = key.token("https://other.supabase.co/auth/v1", sub="ana")
        assert (
            await http.get("/api/v1/conversations", headers={"Authorization": f"Bearer {elsewhere}"})
        ).status_code == 401
    assert supabase.fetches == 1


async def test_pam_jwks_url_moves_the_key_address_and_the_issuer_stays_supabases(stack, supabase):
    stack.orchestrator()
    project = "https://project.supabase.co"
    gateway = stack.gateway(SUPABASE_URL=project, PAM_JWKS_URL=supabase.jwks_url)
    key = supabase.keys[0]
    async with await PamClient.connect(
        gateway.ws_url(f"/ws/ben?token={key.token(project + '/auth/v1', sub='ben')}")
    ) as client:
        assert (await client.recv())["mode"] == "live"
    frame, closed_with = await refused(gateway.ws_url(f"/ws/ben?token={key.token(supabase.issuer, sub='ben')}"))
    assert (frame["code"], closed_with) == ("token_invalid", 4401)


async def test_a_production_gateway_with_only_supabase_keys_needs_no_secret_and_takes_no_hs256(stack, supabase):
    stack.orchestrator()
    gateway = stack.gateway(ENVIRONMENT="production", JWT_SECRET="", SUPABASE_URL=supabase.supabase_url)
    signed = supabase.keys[0].token(supabase.issuer, sub="cy")
    async with await PamClient.connect(gateway.ws_url(f"/ws/cy?token={signed}")) as client:
        assert (await client.recv())["mode"] == "live"
    frame, closed_with = await refused(gateway.ws_url(f"/ws/cy?token={token('cy', secret=DEV_JWT_SECRET)}"))
    assert (frame["code"], closed_with) == ("token_invalid", 4401)
