"""A request head too large is answered at once and closed; one never finished is dropped.

Raw sockets, since a client library would refuse to send such requests.  Before the bounds, an
upgrade with a 9 KB URL was held until the client gave up (the 414 logged only then), and a
plain request took a URL or a header of any size.
"""

from __future__ import annotations

import socket
import time

import pytest
from pam_gateway.request_limits import HEAD_TIMEOUT_SECONDS
from support.tokens import token

pytestmark = pytest.mark.e2e

AT_ONCE = 3.0  # seconds: a refusal comes with no waiting at all; this only bounds a loaded machine
UPGRADE = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
UPGRADE += "Sec-WebSocket-Version: 13\r\n"


def exchange(port: int, chunks: list[bytes], timeout: float) -> tuple[bytes, float]:
    """Send ``chunks``, then read until the gateway closes: what it said, and how long that took."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        started = time.monotonic()
        for chunk in chunks:
            sock.sendall(chunk)
        received = b""
        while data := sock.recv(65536):  # b"" once the gateway closes; a timeout fails the test
            received += data
        return received, time.monotonic() - started


def request(target: str, headers: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()


@pytest.fixture
def gateway_port(stack) -> int:
    return stack.gateway().port


@pytest.mark.parametrize("route", ["/ws/ana?token=", "/api/health?x=", "/api/v1/conversations?token="])
@pytest.mark.parametrize("upgrade", [True, False], ids=["upgrade", "http"])
def test_a_request_line_too_long_is_answered_414_at_once_and_closed(gateway_port, route, upgrade):
    said, took = exchange(gateway_port, [request(route + "a" * 9000, UPGRADE if upgrade else "")], AT_ONCE)
    assert said.startswith(b"HTTP/1.1 414 "), said[:200]
    assert took < AT_ONCE


@pytest.mark.parametrize("upgrade", [True, False], ids=["upgrade", "http"])
def test_headers_too_large_are_answered_431_at_once_and_closed(gateway_port, upgrade):
    one_large = request("/ws/ana?token=x", (UPGRADE if upgrade else "") + f"X-Big: {'b' * 9000}\r\n")
    said, took = exchange(gateway_port, [one_large], AT_ONCE)
    assert said.startswith(b"HTTP/1.1 431 "), said[:200]
    many = "".join(f"X-Pad-{n}: {'p' * 900}\r\n" for n in range(20))  # 18 KB, none too large alone
    said, took = exchange(gateway_port, [request("/api/health", (UPGRADE if upgrade else "") + many)], AT_ONCE)
    assert said.startswith(b"HTTP/1.1 431 "), said[:200]


def test_an_endless_header_sent_in_pieces_is_refused_once_it_passes_the_bound(gateway_port):
    start = b"GET /ws/ana?token=x HTTP/1.1\r\nHost: 127.0.0.1\r\n" + UPGRADE.encode() + b"X-Endless: "
    said, _ = exchange(gateway_port, [start, *[b"e" * 1024] * 17], AT_ONCE)
    assert said.startswith(b"HTTP/1.1 431 "), said[:200]


def test_more_headers_than_a_websocket_handshake_takes_are_refused_at_once(gateway_port):
    many = "".join(f"X-N{n}: {n}\r\n" for n in range(200))  # websockets' own limit is 128
    said, took = exchange(gateway_port, [request(f"/ws/ana?token={token('ana')}", UPGRADE + many)], AT_ONCE)
    assert said.startswith(b"HTTP/1.1 431 "), said[:200]
    assert took < AT_ONCE


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "sent", [b"", b"GET /ws/ana?token=x HTTP/1.1\r\nUpgrade: websocket\r\n"], ids=["nothing", "half"]
)
def test_an_upgrade_that_never_completes_is_dropped_after_the_bound(gateway_port, sent):
    said, took = exchange(gateway_port, [sent], HEAD_TIMEOUT_SECONDS + 10)
    assert said == b"" and HEAD_TIMEOUT_SECONDS - 1 < took < HEAD_TIMEOUT_SECONDS + 5


def test_a_request_within_the_bounds_is_served(gateway_port):
    said, _ = exchange(gateway_port, [request("/api/health?x=" + "a" * 7000, "Connection: close\r\n")], AT_ONCE)
    assert said.startswith(b"HTTP/1.1 200 "), said[:200]
