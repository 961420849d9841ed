"""The command line every scenario shares: quick mode, server options, profiling, result name."""

from __future__ import annotations

import argparse

from bench import exclusive
from bench.procs import exit_on_sigterm
from bench.server_options import WS_IMPLEMENTATIONS, ServerOptions


def parser(description: str) -> argparse.ArgumentParser:
    """The shared options; building it also makes SIGTERM stop the scenario cleanly, and waits
    for any other benchmark on this machine to finish."""
    exit_on_sigterm()
    exclusive.hold()
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="shorter runs (the whole suite in under 3 minutes)")
    parser.add_argument("--ws", choices=WS_IMPLEMENTATIONS, help="uvicorn WebSocket implementation")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), help="event loop of the gateway and yardsticks")
    parser.add_argument("--http", choices=("httptools", "h11"), help="uvicorn HTTP parser")
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for every service (repeatable), e.g. PAM_CHUNK_WINDOW_MS=0 for a lever's before/after",
    )
    parser.add_argument("--profile", action="store_true", help="record the services with py-spy while measuring")
    parser.add_argument("--name", help="results file name (default: the scenario's)")
    return parser


def server_options(args: argparse.Namespace) -> ServerOptions:
    return ServerOptions(ws=args.ws, loop=args.loop, http=args.http)


def service_env(args: argparse.Namespace) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in args.service_env]
    if any(len(pair) != 2 for pair in pairs):
        raise SystemExit("--service-env takes NAME=VALUE")
    return dict(pairs)  # type: ignore[arg-type]
