"""Bounds on a request before the gateway serves it, as uvicorn protocols.

Without them, anyone could hold sockets open without signing in: httptools takes a URL or a
header of any size, websockets' handshake refused an 8 KB upgrade URL with a 414 that nobody
sent until the client gave up, and a request head sent slowly (or never finished) was waited
for forever.  Now a head too large is answered at once (414 for the request line, 431 for the
headers) and the connection closed, and a head not complete within ``HEAD_TIMEOUT_SECONDS``
is dropped; the limits sit below websockets' own, so its handshake never has to refuse.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

log = logging.getLogger("pam.gateway")

MAX_URL_BYTES = 8000
"""The request target; websockets reads a request line of up to 8,192 bytes."""
MAX_HEADER_BYTES = 8000
"""One header's name and value; websockets reads header lines of up to 8,192 bytes."""
MAX_HEAD_BYTES = 16 * 1024
"""Everything before the body: the request line and all headers."""
HEAD_TIMEOUT_SECONDS = 10.0
"""From a connection's (or a request's) first byte to the end of its headers."""
LINGER_SECONDS = 2.0
"""After a refusal, how long what the client still sends is read and dropped before the socket
closes: closing on unread data would reset the connection and lose the refusal with it."""


class _Refused(Exception):
    """Raised inside a parser callback: httptools stops and uvicorn asks for a 400, which becomes this."""


class BoundedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size and a time bound on each request head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refusal: tuple[int, str] | None = None
        self._refused = False
        self._awaiting_head = True
        self._head_bytes = 0
        self._url_done = False
        self._headers_size = 0
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._awaiting_head and self._head_bytes > MAX_HEAD_BYTES and not self._refused:
            self._refuse(*(431, "headers too large") if self._url_done else (414, "request line too long"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_head, self._url_done, self._headers_size = True, False, 0
        self._start_head_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            self._refusal = (414, "request line too long")
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        self._url_done = True
        self._headers_size += len(name) + len(value) + 4  # ": " and CRLF
        if len(name) + len(value) > MAX_HEADER_BYTES or len(self.url) + self._headers_size > MAX_HEAD_BYTES:
            self._refusal = (431, "headers too large")
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_head, self._head_bytes = False, 0
        self._stop_head_timer()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refusal is None:
            super().send_400_response(msg)
        else:
            self._refuse(*self._refusal)

    def _refuse(self, status: int, why: str) -> None:
        log.info("refused a request from %s: %s", self.client, why)
        body = f"{why}\n".encode()
        defaults = self.server_state.default_headers
        head = [STATUS_LINE[status], *(name + b": " + value + b"\r\n" for name, value in defaults)]
        head.append(b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n")
        head.append(b"content-length: %d\r\n\r\n" % len(body))
        self._refused = True
        _answer_and_close(self.transport, b"".join(head) + body)

    def _start_head_timer(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_SECONDS, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        if self._awaiting_head and not self.transport.is_closing():
            log.info("dropped a connection from %s: no complete request in %.0f s", self.client, HEAD_TIMEOUT_SECONDS)
            self.transport.close()


class FlushingWebSocket(WebSocketsSansIOProtocol):
    """uvicorn's websockets protocol, sending websockets' own handshake refusal at once (it waited)."""

    refused = False

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None and not self.refused:
            self.refused = True
            _answer_and_close(self.transport, b"".join(self.conn.data_to_send()))


def _answer_and_close(transport: asyncio.Transport, response: bytes) -> None:
    """Send ``response`` and end the stream at once; close the socket once the client had time to see it."""
    transport.write(response)
    if transport.can_write_eof():
        transport.write_eof()
    asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)
