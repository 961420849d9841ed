"""Which web pages may use the gateway: ``PAM_ALLOWED_ORIGINS``, for REST (CORS) and sockets.

A browser always says where a page came from (``Origin``); a socket from a page not
listed (nor served by the gateway itself, as the chat page is) is refused at the handshake,
so another site cannot open one with a user's token.  Clients that are not browsers send
no ``Origin`` and are not affected.
"""

from __future__ import annotations

from urllib.parse import urlparse

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware


def allowed(origin: str | None, origins: tuple[str, ...], host: str | None) -> bool:
    if origin is None or "*" in origins or origin.rstrip("/") in origins:
        return True
    return host is not None and urlparse(origin).netloc == host  # a page of our own


def cors(origins: tuple[str, ...]) -> Middleware:
    """CORS for the REST endpoints, from the same list."""
    return Middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        max_age=600,
    )
