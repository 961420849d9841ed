"""Supabase's side of asymmetric sign-in, for tests: signing keys, their JWKS on loopback, tokens.

``JwksServer`` serves ``/auth/v1/.well-known/jwks.json`` like a Supabase project does, so a
gateway started with ``SUPABASE_URL=server.supabase_url`` finds the keys by itself; it counts
the fetches.  ``SigningKey.token()`` signs a token shaped like Supabase's access tokens.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

JWKS_PATH = "/auth/v1/.well-known/jwks.json"


@dataclass
class SigningKey:
    """A key pair as Supabase holds one: ``kid``, algorithm, private half for signing."""

    kid: str
    alg: str
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

    @classmethod
    def es256(cls, kid: str = "es-key-1") -> SigningKey:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def rs256(cls, kid: str = "rs-key-1") -> SigningKey:
        return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def jwk(self) -> dict[str, Any]:
        """The public half, as it appears in the project's JWKS."""
        if isinstance(self.private, ec.EllipticCurvePrivateKey):
            public: dict[str, Any] = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            public = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "alg": self.alg, "use": "sig", "key_ops": ["verify"]}

    def token(self, issuer: str, sub: str = "user-1", ttl: float = 3600, kid: str | None = None, **claims: Any) -> str:
        """A Supabase-shaped access token; a claim given as None is left out."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": issuer,
            "sub": sub,
            "aud": "authenticated",
            "role": "authenticated",
            "iat": now,
            "exp": now + ttl,
            "session_id": "test-session",
            "is_anonymous": False,
            **claims,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, self.private, algorithm=self.alg, headers={"kid": kid or self.kid})


@dataclass
class JwksServer:
    """Serves the JWKS of ``keys`` on a free loopback port until stopped."""

    keys: list[SigningKey] = field(default_factory=list)
    fetches: int = 0
    delay: float = 0.0
    """Seconds each answer waits, to show a slow Supabase holds up nothing else."""
    _http: ThreadingHTTPServer | None = None

    @property
    def supabase_url(self) -> str:
        assert self._http is not None, "not started"
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def issuer(self) -> str:
        return self.supabase_url + "/auth/v1"

    @property
    def jwks_url(self) -> str:
        return self.supabase_url + JWKS_PATH

    def start(self) -> JwksServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != JWKS_PATH:
                    self.send_error(404)
                    return
                server.fetches += 1
                time.sleep(server.delay)
                body = json.dumps({"keys": [k.jwk() for k in server.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def __enter__(self) -> JwksServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
