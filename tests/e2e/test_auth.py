"""Who may open a socket: Supabase-style JWTs, the demo token, and clear refusals."""

from __future__ import annotations

import pytest
from support.client import PamClient, refused
from support.tokens import token

REFUSALS = [
    ("/ws/user-1", "token_invalid", 4401),  # no token at all
    ("/ws/user-1?token=", "token_invalid", 4401),
    ("/ws/user-1?token=not-a-jwt", "token_invalid", 4401),
    (f"/ws/user-1?token={token('user-1', ttl=-60)}", "token_expired", 4401),
    (f"/ws/user-1?token={token('user-1', secret='another-secret-0123456789-abcdefghij')}", "token_invalid", 4401),
    (f"/ws/user-1?token={token('user-1', aud='someone-else')}", "token_invalid", 4401),
    (f"/ws/user-1?token={token(None)}", "token_invalid", 4401),  # no sub
    (f"/ws/user-1?token={token('user-1', exp=None)}", "token_invalid", 4401),  # no exp
    (f"/ws/user-1?token={token('user-2')}", "user_mismatch", 4403),
    ("/api/v1/pam/ws?token=garbage", "token_invalid", 4401),
]


@pytest.fixture
def gateway(stack):
    stack.orchestrator()
    return stack.gateway()


async def test_bad_tokens_get_an_error_frame_then_a_close_code(gateway):
    for path, code, close_code in REFUSALS:
        frame, closed_with = await refused(gateway.ws_url(path))
        assert (frame["type"], frame["code"], closed_with) == ("error", code, close_code), path
        assert "token=" not in frame["message"]


async def test_supabase_token_opens_a_live_session_on_both_endpoints(gateway):
    supabase = token("6f1c-user", aud="authenticated", role="authenticated", email="a@b.c")
    for path in (f"/ws/6f1c-user?token={supabase}", f"/api/v1/pam/ws?token={supabase}"):
        async with await PamClient.connect(gateway.ws_url(path)) as client:
            hello = await client.recv()
        assert hello["status"] == "connected" and hello["user_id"] == "6f1c-user" and hello["mode"] == "live"


async def test_tokens_without_an_audience_are_accepted(gateway):
    async with await PamClient.connect(gateway.ws_url(f"/ws/u9?token={token('u9', aud=None)}")) as client:
        assert (await client.recv())["mode"] == "live"


async def test_demo_token_is_refused_when_demo_mode_is_off(stack):
    stack.orchestrator()
    gateway = stack.gateway(PAM_DEMO_MODE="false")
    frame, closed_with = await refused(gateway.ws_url("/ws/visitor?token=demo-token"))
    assert frame["code"] == "token_invalid" and closed_with == 4401


async def test_tokens_never_reach_the_logs(gateway):
    secret_token = token("user-7")
    async with await PamClient.connect(gateway.ws_url(f"/ws/user-7?token={secret_token}")) as client:
        await client.recv()
        await client.chat("hello", "user-7")
    await refused(gateway.ws_url(f"/ws/user-1?token={secret_token}"))
    logged = "\n".join(gateway.lines)
    assert "socket opened" in logged
    assert secret_token not in logged and secret_token.split(".")[2] not in logged
