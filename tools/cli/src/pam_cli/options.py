"""Options several commands share, with their environment defaults."""

from __future__ import annotations

import argparse
import os
from urllib.parse import urlparse

from pam_shared.auth import DEMO_TOKEN

DEFAULT_URL = "http://127.0.0.1:8000"


def gateway_url(value: str) -> str:
    """argparse type: an http(s) base URL, kept without a trailing slash."""
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise argparse.ArgumentTypeError(f"{value!r} is not an http:// or https:// URL")
    return value.rstrip("/")


def positive_int(value: str) -> int:
    """argparse type: a whole number above zero."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number above zero")
    return number


def positive_float(value: str) -> float:
    """argparse type: a number of seconds above zero."""
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number above zero")
    return number


def add_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        type=gateway_url,
        default=os.environ.get("PAM_URL") or DEFAULT_URL,
        help="the gateway's base URL (env PAM_URL, default %(default)s)",
    )


def add_identity(parser: argparse.ArgumentParser) -> None:
    """``--token`` and ``--user``: who the socket signs in as, like the frontend's URL."""
    parser.add_argument(
        "--token",
        default=os.environ.get("PAM_TOKEN") or DEMO_TOKEN,
        help="sign-in token (env PAM_TOKEN; default the demo token); `pam token --user ID` makes one",
    )
    parser.add_argument(
        "--user",
        help="connect as this user (/ws/USER, as the frontend does); default: the token's own user (/api/v1/pam/ws)",
    )
