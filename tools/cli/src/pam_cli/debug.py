"""Turn verbose logging on or off for one user or session, in every service, without a restart.

The backend's side of the seed's ``pam-debug`` flag: publishes the switch on
``<namespace>.control.debug`` (NATS_URL, PAM_NATS_NAMESPACE); every gateway,
orchestrator and persistence instance follows it at once.
"""

from __future__ import annotations

import argparse

from pam_shared.debugging import DebugSwitch, switch_encoder
from pam_shared.logs import OK
from pam_shared.settings import load_settings

from pam_cli.console import say
from pam_cli.nats_link import connect


def add_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--user", help="a user id")
    target.add_argument("--session", help="a session id (from the connection frame or the logs)")
    parser.add_argument("state", choices=("on", "off"))


async def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    switch = DebugSwitch(enabled=args.state == "on", user_id=args.user, session_id=args.session)
    nc = await connect(settings.nats)
    try:
        await nc.publish(settings.subjects.debug_control, switch_encoder.encode(switch))
        await nc.flush()
    finally:
        await nc.close()
    say(OK, f"debug logging {args.state} for {'user ' + args.user if args.user else 'session ' + args.session}")
    return 0
