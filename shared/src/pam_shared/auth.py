"""Who is on the other end of a socket: JWT checks and the demo identity."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import PyJWK

from pam_shared.errors import ErrorCode
from pam_shared.jwks import SIGNING_ALGORITHMS, JwksKeys, JwksUnavailable
from pam_shared.settings import AuthSettings, ConfigError

DEMO_TOKEN = "demo-token"
DEMO_PREFIX = "demo:"
"""Demo identities are ``demo:<random>``; a token whose subject starts so is refused, so a
demo session is never a real user and no token ever names a demo session."""

_jwks: dict[str, JwksKeys] = {}
"""Each JWKS address's keys, fetched once per process and kept (see ``JwksKeys``)."""


class AuthError(Exception):
    """The token was refused; ``code`` is the error code sent to the client."""

    def __init__(self, code: ErrorCode) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    demo: bool
    role: str | None = None
    expires_at: float | None = None
    claimed_id: str | None = None
    """The path id a demo session was opened on: shown back to it, never trusted."""

    def owns(self, user_id: str) -> bool:
        """Whether a chat's ``user_id`` names this session (the seed's frontend sends its path id)."""
        return user_id == self.user_id or (self.demo and user_id == self.claimed_id)


async def verify_token(token: str | None, settings: AuthSettings) -> Identity:
    """Check a Supabase access token: HS256 with ``JWT_SECRET``, or ES256/RS256 against the
    project's JWKS when ``SUPABASE_URL`` is set (then ``iss`` and ``aud`` must be Supabase's)."""
    if not token:
        raise AuthError("token_invalid")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise AuthError("token_invalid") from None
    if header.get("alg") == "HS256":
        if settings.jwt_secret is None:  # a JWKS-only deployment
            raise AuthError("token_invalid")
        return _identity(_decode(token, settings.jwt_secret, "HS256", settings, issuer=None))
    if header.get("alg") not in SIGNING_ALGORITHMS or settings.jwks_url is None:
        raise AuthError("token_invalid")
    key = await _signing_key(header.get("kid"), settings)
    if key is None or key.algorithm_name != header["alg"]:
        raise AuthError("token_invalid")
    return _identity(_decode(token, key, key.algorithm_name, settings, issuer=settings.jwt_issuer))


def _decode(token: str, key: str | PyJWK, algorithm: str, settings: AuthSettings, issuer: str | None) -> dict[str, Any]:
    """Signature and ``exp`` always; ``iss`` and ``aud`` required when an issuer is given."""
    required = ["exp", "sub", "iss", "aud"] if issuer else ["exp", "sub"]
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            leeway=settings.jwt_leeway_seconds,
            issuer=issuer,
            options={"require": required, "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token_expired") from None
    except jwt.InvalidTokenError:
        raise AuthError("token_invalid") from None
    if not _audience_ok(claims.get("aud"), settings.jwt_audience):
        raise AuthError("token_invalid")
    return claims


def _identity(claims: dict[str, Any]) -> Identity:
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject or subject.startswith(DEMO_PREFIX):
        raise AuthError("token_invalid")
    return Identity(user_id=subject, demo=False, role=claims.get("role"), expires_at=claims["exp"])


async def _signing_key(kid: object, settings: AuthSettings) -> PyJWK | None:
    """The JWKS key a token names; the keys of each address are kept once per process."""
    if not isinstance(kid, str) or not kid or settings.jwks_url is None:
        return None
    keys = _jwks.get(settings.jwks_url)
    if keys is None:
        keys = _jwks[settings.jwks_url] = JwksKeys(
            settings.jwks_url, settings.jwks_refresh_seconds, settings.jwks_cache_seconds
        )
    try:
        return await keys.key(kid)
    except JwksUnavailable:
        return None


def _audience_ok(audience: object, expected: str) -> bool:
    """Tokens without ``aud`` are accepted (unless an issuer requires one); tokens with one must name ours."""
    if audience is None:
        return True
    if isinstance(audience, str):
        return audience == expected
    return isinstance(audience, list) and expected in audience


async def authenticate(token: str | None, path_user_id: str | None, settings: AuthSettings) -> Identity:
    """Resolve a socket's identity; the demo token works only while demo mode is on.

    The demo token is public, so a demo session gets a fresh identity of its own: the path
    id it came with reaches nobody's frames, pushes, quota or history."""
    if token == DEMO_TOKEN and settings.demo_mode:
        return Identity(user_id=DEMO_PREFIX + secrets.token_hex(16), demo=True, claimed_id=path_user_id)
    identity = await verify_token(token, settings)
    if path_user_id is not None and path_user_id != identity.user_id:
        raise AuthError("user_mismatch")
    return identity


def mint_token(settings: AuthSettings, user_id: str, ttl_seconds: int = 3600, role: str = "authenticated") -> str:
    """Sign a development token the gateway accepts (used by tests, `make run` and the CLI)."""
    import time

    if settings.jwt_secret is None:
        raise ConfigError("minting a token needs JWT_SECRET (this deployment checks Supabase's keys only)")
    now = int(time.time())
    claims = {"sub": user_id, "aud": settings.jwt_audience, "role": role, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
