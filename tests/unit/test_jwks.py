"""Supabase's asymmetric tokens (ES256, RS256) checked against its JWKS, beside HS256."""

import asyncio
import time
from collections.abc import Iterator

import jwt
import pytest
from pam_shared import auth
from pam_shared.auth import AuthError, verify_token
from pam_shared.jwks import JwksKeys
from pam_shared.settings import AuthSettings, ConfigError, load_auth_settings
from support.jwks_server import JwksServer, SigningKey

SECRET = "unit-test-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def fresh_key_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ports are reused, so one test's cached keys must not meet another's server."""
    monkeypatch.setattr(auth, "_jwks", {})


@pytest.fixture
def supabase() -> Iterator[JwksServer]:
    with JwksServer([SigningKey.es256(), SigningKey.rs256()]) as server:
        yield server


def settings_for(server: JwksServer, **env: str) -> AuthSettings:
    return load_auth_settings({"JWT_SECRET": SECRET, "SUPABASE_URL": server.supabase_url, **env})


async def code_of(token: str, settings: AuthSettings) -> str:
    with pytest.raises(AuthError) as error:
        await verify_token(token, settings)
    return error.value.code


@pytest.mark.parametrize("index", [0, 1], ids=["ES256", "RS256"])
async def test_supabase_signed_tokens_name_the_user(supabase: JwksServer, index: int):
    key = supabase.keys[index]
    identity = await verify_token(key.token(supabase.issuer, sub="u1"), settings_for(supabase))
    assert identity.user_id == "u1" and identity.role == "authenticated" and not identity.demo
    assert identity.expires_at and identity.expires_at > time.time()


async def test_issuer_audience_expiry_and_signature_are_checked(supabase: JwksServer):
    settings, key = settings_for(supabase), supabase.keys[0]
    assert await code_of(key.token("https://elsewhere.supabase.co/auth/v1"), settings) == "token_invalid"
    assert await code_of(key.token(supabase.issuer, iss=None), settings) == "token_invalid"
    assert await code_of(key.token(supabase.issuer, aud="other"), settings) == "token_invalid"
    assert await code_of(key.token(supabase.issuer, aud=None), settings) == "token_invalid"
    assert await code_of(key.token(supabase.issuer, ttl=-60), settings) == "token_expired"
    assert await code_of(key.token(supabase.issuer, sub="demo:x"), settings) == "token_invalid"
    impostor = SigningKey.es256(kid=key.kid)  # right kid, someone else's private key
    assert await code_of(impostor.token(supabase.issuer), settings) == "token_invalid"
    assert await code_of(key.token(supabase.issuer, kid="nobody"), settings) == "token_invalid"


async def test_asymmetric_tokens_are_refused_without_supabase_url(supabase: JwksServer):
    hs_only = load_auth_settings({"JWT_SECRET": SECRET})
    assert await code_of(supabase.keys[0].token(supabase.issuer), hs_only) == "token_invalid"
    assert supabase.fetches == 0


async def test_hs256_keeps_working_beside_the_jwks(supabase: JwksServer):
    settings = settings_for(supabase)
    hs = jwt.encode({"sub": "u2", "aud": "authenticated", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    assert (await verify_token(hs, settings)).user_id == "u2"
    assert supabase.fetches == 0


async def test_keys_are_fetched_once_and_kept(supabase: JwksServer):
    settings = settings_for(supabase)
    for key in supabase.keys * 3:
        await verify_token(key.token(supabase.issuer), settings)
    assert supabase.fetches == 1


async def test_a_rotated_key_is_fetched_when_a_token_names_it(supabase: JwksServer):
    settings = settings_for(supabase, PAM_JWKS_REFRESH_SECONDS="1")
    await verify_token(supabase.keys[0].token(supabase.issuer), settings)
    rotated = SigningKey.es256(kid="es-key-2")
    supabase.keys.append(rotated)
    assert await code_of(rotated.token(supabase.issuer), settings) == "token_invalid"  # fetched a moment ago
    await asyncio.sleep(1.05)
    assert (await verify_token(rotated.token(supabase.issuer), settings)).user_id == "user-1"
    assert supabase.fetches == 2


async def test_unknown_kids_refetch_at_a_bounded_rate():
    calls = 0

    async def fetch(url: str) -> bytes:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return b'{"keys": []}'

    keys = JwksKeys("http://jwks.invalid", refresh_seconds=0.2, cache_seconds=600, fetch=fetch)
    assert await asyncio.gather(*(keys.key(f"made-up-{i}") for i in range(50))) == [None] * 50
    assert calls == 1  # concurrent misses shared one fetch
    assert await keys.key("another") is None and calls == 1
    await asyncio.sleep(0.25)
    assert await keys.key("later") is None and calls == 2


async def test_a_failed_refetch_keeps_the_keys_we_had(supabase: JwksServer):
    settings = settings_for(supabase, PAM_JWKS_REFRESH_SECONDS="1")
    token = supabase.keys[0].token(supabase.issuer)
    await verify_token(token, settings)
    supabase.stop()
    await asyncio.sleep(1.05)
    assert await code_of(supabase.keys[0].token(supabase.issuer, kid="new"), settings) == "token_invalid"
    assert (await verify_token(token, settings)).user_id == "user-1"


async def test_an_unreachable_jwks_refuses_the_token():
    server = JwksServer([SigningKey.es256()]).start()
    token, settings = server.keys[0].token(server.issuer), settings_for(server)
    server.stop()
    assert await code_of(token, settings) == "token_invalid"


async def test_a_slow_jwks_does_not_hold_up_the_event_loop(supabase: JwksServer):
    supabase.delay = 0.5
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await verify_token(supabase.keys[0].token(supabase.issuer), settings_for(supabase))
    ticker.cancel()
    assert ticks >= 20


def test_jwks_settings():
    base = {"JWT_SECRET": SECRET, "SUPABASE_URL": "https://abc.supabase.co/"}
    settings = load_auth_settings(base)
    assert settings.jwks_url == "https://abc.supabase.co/auth/v1/.well-known/jwks.json"
    assert settings.jwt_issuer == "https://abc.supabase.co/auth/v1"
    moved = load_auth_settings({**base, "PAM_JWKS_URL": "http://127.0.0.1:9/keys"})
    assert moved.jwks_url == "http://127.0.0.1:9/keys" and moved.jwt_issuer == settings.jwt_issuer
    assert load_auth_settings({"JWT_SECRET": SECRET}).jwks_url is None
    with pytest.raises(ConfigError, match="PAM_JWKS_URL"):
        load_auth_settings({"JWT_SECRET": SECRET, "PAM_JWKS_URL": "http://127.0.0.1:9/keys"})
    with pytest.raises(ConfigError, match="PAM_JWKS_CACHE_SECONDS"):
        load_auth_settings({**base, "PAM_JWKS_REFRESH_SECONDS": "60", "PAM_JWKS_CACHE_SECONDS": "30"})
