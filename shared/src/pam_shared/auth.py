"""Who is on the other end of a socket: JWT checks and the demo identity."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import jwt

from pam_shared.settings import AuthSettings

DEMO_TOKEN = "demo-token"
DEMO_PREFIX = "demo:"
"""Demo identities are ``demo:<random>``; a token whose subject starts so is refused, so a
demo session is never a real user and no token ever names a demo session."""


class AuthError(Exception):
    """The token was refused; ``code`` is the error code sent to the client."""

    def __init__(self, code: str) -> None:
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


def verify_token(token: str | None, settings: AuthSettings) -> Identity:
    """Check a Supabase-style HS256 token: signature, ``exp``, ``sub`` and audience."""
    if not token:
        raise AuthError("token_invalid")
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=["HS256"],
            leeway=settings.jwt_leeway_seconds,
            options={"require": ["exp", "sub"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token_expired") from None
    except jwt.InvalidTokenError:
        raise AuthError("token_invalid") from None
    if not _audience_ok(claims.get("aud"), settings.jwt_audience):
        raise AuthError("token_invalid")
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject or subject.startswith(DEMO_PREFIX):
        raise AuthError("token_invalid")
    return Identity(user_id=subject, demo=False, role=claims.get("role"), expires_at=claims["exp"])


def _audience_ok(audience: object, expected: str) -> bool:
    """Tokens without ``aud`` are accepted; tokens with one must name ours."""
    if audience is None:
        return True
    if isinstance(audience, str):
        return audience == expected
    return isinstance(audience, list) and expected in audience


def authenticate(token: str | None, path_user_id: str | None, settings: AuthSettings) -> Identity:
    """Resolve a socket's identity; the demo token works only while demo mode is on.

    The demo token is public, so a demo session gets a fresh identity of its own: the path
    id it came with reaches nobody's frames, pushes, quota or history."""
    if token == DEMO_TOKEN and settings.demo_mode:
        return Identity(user_id=DEMO_PREFIX + secrets.token_hex(16), demo=True, claimed_id=path_user_id)
    identity = verify_token(token, settings)
    if path_user_id is not None and path_user_id != identity.user_id:
        raise AuthError("user_mismatch")
    return identity


def mint_token(settings: AuthSettings, user_id: str, ttl_seconds: int = 3600, role: str = "authenticated") -> str:
    """Sign a development token the gateway accepts (used by tests, `make run` and the CLI)."""
    import time

    now = int(time.time())
    claims = {"sub": user_id, "aud": settings.jwt_audience, "role": role, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
