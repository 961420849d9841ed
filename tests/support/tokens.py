"""Signing test tokens shaped like the ones Supabase issues."""

from __future__ import annotations

import time
from typing import Any

import jwt

TEST_JWT_SECRET = "pam-test-secret-0123456789abcdef"


def token(sub: str | None = "user-1", secret: str = TEST_JWT_SECRET, ttl: float = 3600, **claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"aud": "authenticated", "role": "authenticated", "iat": now, "exp": now + ttl}
    if sub is not None:
        payload["sub"] = sub
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, algorithm="HS256")
