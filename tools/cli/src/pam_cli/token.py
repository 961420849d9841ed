"""Mint a development token the gateway accepts, signed with JWT_SECRET.

The token alone goes to stdout, so `export PAM_TOKEN=$(pam token --user me)` works.
"""

from __future__ import annotations

import argparse
import os

from pam_shared.auth import mint_token
from pam_shared.logs import OK
from pam_shared.settings import load_auth_settings

from pam_cli import options
from pam_cli.console import duration, say


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", required=True, help="the user id (the token's sub)")
    parser.add_argument(
        "--ttl", type=options.positive_int, default=3600, help="seconds it stays valid (default %(default)s)"
    )
    parser.add_argument("--role", default="authenticated", help="the role claim (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    settings = load_auth_settings()
    print(mint_token(settings, args.user, args.ttl, args.role), flush=True)
    secret = "JWT_SECRET" if os.environ.get("JWT_SECRET") else "the development secret (JWT_SECRET is not set)"
    say(OK, f"token for {args.user} (role {args.role}), valid {duration(args.ttl)}, signed with {secret}", err=True)
    return 0
