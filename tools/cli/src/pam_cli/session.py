"""Opening a PAM socket the way the frontend does, and saying precisely why it failed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

import msgspec
import websockets
from pam_shared.protocol import (
    FORBIDDEN,
    RATE_LIMITED,
    SERVICE_RESTART,
    UNAUTHORIZED,
    Connection,
    Error,
    ServerFrame,
    encoder,
    server_decoder,
)
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from pam_cli.failure import Failure

OPEN_TIMEOUT_SECONDS = 5.0
CLOSE_CODES = {
    UNAUTHORIZED: "auth failed (close code 4401, unauthorized)",
    FORBIDDEN: "auth failed (close code 4403, forbidden)",
    RATE_LIMITED: "refused (close code 4429, too many connections or messages)",
    SERVICE_RESTART: "the gateway is restarting (close code 1012); try again",
}
LABELS = {
    "token_invalid": "auth failed",
    "token_expired": "auth failed",
    "user_mismatch": "auth failed",
    "orchestrator_unavailable": "no orchestrators",
    "timeout": "no answer in time",
    "connection_limited": "refused",
    "rate_limited": "rate limited",
}


@dataclass
class Session:
    """An authenticated socket: the gateway has sent its ``connection`` frame."""

    ws: ClientConnection
    url: str
    hello: Connection
    connect_ms: float
    ready_ms: float

    def describe(self) -> str:
        """The 🔌 line every socket command starts with."""
        hello = self.hello
        return (
            f"connected to {self.url} in {self.connect_ms:.1f} ms, session ready in {self.ready_ms:.1f} ms"
            f" (mode {hello.mode}, user {hello.user_id}, session {hello.session_id})"
        )

    async def send(self, frame: msgspec.Struct) -> None:
        await self.ws.send(encoder.encode(frame).decode())

    async def receive(self, timeout: float) -> ServerFrame:
        return await _receive(self.ws, timeout)


@contextlib.asynccontextmanager
async def open_session(base_url: str, token: str, user: str | None) -> AsyncIterator[Session]:
    """Connect, wait for the ``connection`` frame, close on the way out."""
    url = base_url.replace("http", "ws", 1) + (f"/ws/{quote(user, safe='')}" if user else "/api/v1/pam/ws")
    started = time.perf_counter()
    ws = await _connect(url, token)
    connect_ms = (time.perf_counter() - started) * 1000
    try:
        first = await _receive(ws, OPEN_TIMEOUT_SECONDS)
        if isinstance(first, Error):
            raise Failure(await _refusal(ws, first))
        if not isinstance(first, Connection) or first.status != "connected":
            raise Failure(f"the gateway's first frame was {encoder.encode(first).decode()}, not a connection")
        ready_ms = (time.perf_counter() - started) * 1000
        yield Session(ws, url, first, connect_ms, ready_ms)
    finally:
        await ws.close()


async def _connect(url: str, token: str) -> ClientConnection:
    """The handshake alone; the token never appears in a message."""
    try:
        return await websockets.connect(
            f"{url}?token={quote(token, safe='')}", open_timeout=OPEN_TIMEOUT_SECONDS, compression=None, max_size=None
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise Failure(f"{url} refused the WebSocket (HTTP {status}); is --url a PAM gateway?") from None
    except InvalidURI:
        raise Failure(f"{url} is not a WebSocket URL") from None
    except TimeoutError:
        raise Failure(f"backend unreachable: no WebSocket handshake from {url} in {OPEN_TIMEOUT_SECONDS:g} s") from None
    except (OSError, InvalidHandshake) as exc:
        raise Failure(f"backend unreachable at {url} ({exc})") from None


async def _refusal(ws: ClientConnection, error: Error) -> str:
    """A refused socket gets an error frame, then a close; name both codes."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ws.wait_closed(), OPEN_TIMEOUT_SECONDS)
    close = f", close code {ws.close_code}" if ws.close_code is not None else ""
    return f"{LABELS.get(error.code, 'refused')} ({error.code}{close}): {error.message}"


async def _receive(ws: ClientConnection, timeout: float) -> ServerFrame:
    try:
        raw = await asyncio.wait_for(ws.recv(), timeout)
    except TimeoutError:
        raise Failure(f"the gateway sent nothing for {timeout:g} s") from None
    except ConnectionClosed as exc:
        raise Failure(_closed(exc)) from None
    try:
        frame: ServerFrame = server_decoder.decode(raw)
        return frame
    except msgspec.DecodeError as exc:
        raise Failure(f"the gateway sent a frame pam does not understand ({exc}): {str(raw)[:200]}") from None


def _closed(exc: ConnectionClosed) -> str:
    """Why the gateway hung up, by close code."""
    code = exc.rcvd.code if exc.rcvd is not None else None
    if code in CLOSE_CODES:
        return CLOSE_CODES[code]
    reason = f": {exc.rcvd.reason}" if exc.rcvd is not None and exc.rcvd.reason else ""
    return f"the gateway closed the socket (close code {code if code is not None else 'none'}{reason})"


def explain(error: Error) -> str:
    """One line for an ``error`` frame: what kind of failure, its stable code, the server's words."""
    return f"{LABELS.get(error.code, 'error')} ({error.code}): {error.message}"
