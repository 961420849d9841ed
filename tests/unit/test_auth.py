import time

import jwt
import pytest
from pam_shared.auth import AuthError, authenticate, mint_token, verify_token
from pam_shared.settings import DEV_JWT_SECRET, ConfigError, load_auth_settings

SECRET = "unit-test-secret-0123456789abcdef"
settings = load_auth_settings({"JWT_SECRET": SECRET})


def sign(claims: dict, secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def claims(**extra) -> dict:
    base = {"sub": "u1", "aud": "authenticated", "exp": int(time.time()) + 60}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


async def code_of(token: str | None) -> str:
    with pytest.raises(AuthError) as error:
        await verify_token(token, settings)
    return error.value.code


async def test_a_good_token_names_the_user_and_expiry():
    identity = await verify_token(sign(claims(role="authenticated")), settings)
    assert identity.user_id == "u1" and not identity.demo and identity.role == "authenticated"
    assert identity.expires_at and identity.expires_at > time.time()


@pytest.mark.filterwarnings("ignore:The HMAC key")  # the HS512 token is meant to be refused
async def test_refusals_say_why():
    assert await code_of(None) == "token_invalid"
    assert await code_of(sign(claims(exp=int(time.time()) - 30))) == "token_expired"
    assert await code_of(sign(claims(aud="other"))) == "token_invalid"
    assert await code_of(sign(claims(sub=None))) == "token_invalid"
    assert await code_of(sign(claims(exp=None))) == "token_invalid"
    assert await code_of(sign(claims(), secret="x" * 40)) == "token_invalid"
    assert await code_of(sign(claims(nbf=int(time.time()) + 60))) == "token_invalid"
    assert await code_of(sign(claims(), algorithm="HS512")) == "token_invalid"
    assert await code_of(jwt.encode(claims(), None, algorithm="none")) == "token_invalid"


async def test_a_few_seconds_of_clock_skew_are_forgiven():
    assert (await verify_token(sign(claims(exp=int(time.time()) - 2)), settings)).user_id == "u1"


async def test_demo_token_depends_on_demo_mode():
    assert (await authenticate("demo-token", "visitor", settings)).demo is True
    no_demo = load_auth_settings({"JWT_SECRET": SECRET, "PAM_DEMO_MODE": "off"})
    with pytest.raises(AuthError):
        await authenticate("demo-token", "visitor", no_demo)


async def test_path_user_must_match_the_token():
    with pytest.raises(AuthError) as error:
        await authenticate(sign(claims()), "u2", settings)
    assert error.value.code == "user_mismatch"


async def test_minted_tokens_verify():
    assert (await verify_token(mint_token(settings, "dev-user"), settings)).user_id == "dev-user"


async def test_without_a_secret_no_hs256_token_is_taken_not_even_one_signed_with_the_development_secret():
    keys_only = load_auth_settings({"ENVIRONMENT": "production", "SUPABASE_URL": "https://ref.supabase.co"})
    for secret in (SECRET, DEV_JWT_SECRET):
        with pytest.raises(AuthError) as error:
            await verify_token(sign(claims(), secret), keys_only)
        assert error.value.code == "token_invalid"
    with pytest.raises(ConfigError, match="^minting a token needs JWT_SECRET"):
        mint_token(keys_only, "u1")
