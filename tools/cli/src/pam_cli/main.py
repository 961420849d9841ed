"""The ``pam`` command: the seed's debugging procedures, one subcommand each."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from types import ModuleType

from pam_shared.logs import ERROR
from pam_shared.settings import ConfigError

from pam_cli import chat, debug, health, ping, stats, token
from pam_cli.failure import Failure

COMMANDS: tuple[ModuleType, ...] = (health, ping, chat, token, stats, debug)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pam",
        description="Debug a PAM backend: health, a test socket, a streamed chat, a dev token, service stats.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        doc = module.__doc__ or ""
        command = commands.add_parser(
            module.__name__.rsplit(".", 1)[-1],
            help=doc.splitlines()[0],
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    raise SystemExit(run(args))


def run(args: argparse.Namespace) -> int:
    """Run one command; every expected failure becomes one ❌ line and exit status 1."""
    try:
        outcome = args.run(args)
        status: int = asyncio.run(outcome) if asyncio.iscoroutine(outcome) else outcome
        return status
    except (Failure, ConfigError) as exc:
        print(f"{ERROR} {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `pam ... | head`: stop quietly, as other commands do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
