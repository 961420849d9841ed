"""Soak: N users chat through two gateways while sockets drop and every service restarts.

Bounded (minutes) and loopback only.  It starts its own stack on a fresh NATS namespace
(2 gateways on fixed ports, 2 orchestrators on the offline engine or, with ``--llm fake``,
the tests' fake OpenAI server for slower streamed answers), runs ``--clients`` users for
``--duration`` seconds, and meanwhile restarts each gateway (SIGTERM, drain, start on the
same port) and replaces orchestrators (one SIGTERM, one SIGKILL) at evenly spaced times.

Each user has its own JWT, connects to a random gateway, sends chats with unique
``message_id``s (at most ``--window`` waiting for an answer, so chats arrive while an answer
streams: each asks for an ``on_busy`` policy at random), follows some with a ``cancel`` of one
of its unanswered chats (``--cancels``), now and then aborts its own
socket (at a random moment, or just after a chat went out, i.e. mid-answer), reconnects
with the seed's backoff (1 s, 2 s, 4 s ..., capped at 10 s, reset on success) to either
gateway, and resumes from the highest ``event_id`` it has seen.

Definitions (per ``message_id``; no id is ever sent twice):

written
    ``ws.send`` returned without error.  A send that raised did not go out (the socket
    was already closed); the same text is sent again after the reconnect as a new chat
    with a new id, because the server does not dedupe ids: a reused id would turn one
    honest retry into what looks like a server duplicate.
sent
    A gateway read it.  Evidence: the gateway journaled it (a ``UserMessage`` event with
    that ``client_message_id``, recorded before the chat goes to an orchestrator), or a
    frame answering it arrived.  Once a gateway has read a chat its answer is owed, even
    if our own drop came right after: that is what ``resume`` is for.  A written chat no
    gateway read is not sent; it is reported by who ended its socket (``client_drop``:
    our own abort took it down with it; ``server_close_1012``: the gateway closed for a
    restart before reading it).  No service ever had them, so they are shown but not
    counted as lost; a non-zero ``server_close_1012`` still deserves a look.
answered
    A ``chat_response`` or ``error`` with that ``reply_to`` arrived on any socket of that
    user (live, copied to another socket, or replayed after ``resume``); errors are
    answers too and are counted by code (``worker_lost``, ``timeout`` ...).
lost
    Sent and never answered by the end of the final drain: after the load, each user
    waits (bounded) for answers owed on its open socket, then reconnects, resumes, and
    reads until every sent chat is answered or the drain deadline passes.
duplicated
    More than one final frame for one ``message_id``.

Prints a table, writes JSON (default ``bench/results/soak.json``) and exits 1 when
anything was lost or duplicated.

    .venv/bin/python scripts/soak.py --quick            # 20 users, 30 s
    .venv/bin/python scripts/soak.py                    # 50 users, 120 s
    .venv/bin/python scripts/soak.py --clients 5 --duration 15 --chaos gateway,orchestrator-kill
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.js.errors import NotFoundError
from pam_shared.auth import mint_token
from pam_shared.settings import load_auth_settings
from pam_shared.subjects import Subjects
from soak_client import Behaviour, Phases, SoakClient
from soak_ledger import Journal, account, kept_finals, outstanding, table, to_explain
from soak_stack import CHAOS_ACTIONS, ROOT, Stack

GATEWAYS = 2
ORCHESTRATORS = 2
REPLY_TIMEOUT_SECONDS = 5.0
"""Short, so a killed worker is noticed (and its chat retried or ended) well within the drain."""
SETTLE_SECONDS = 2 * REPLY_TIMEOUT_SECONDS + 2
DRAIN_POLL_SECONDS = 0.5
PROGRESS_EVERY_SECONDS = 10.0
SLOW_ANSWER_DIRECTIVE = "[gap:0.05]"
DEFAULT_CHAOS = "gateway,orchestrator-term,gateway,orchestrator-kill"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--quick", action="store_true", help="20 clients for 30 s")
    parser.add_argument("--chaos", default=DEFAULT_CHAOS, help=f"comma list of {', '.join(CHAOS_ACTIONS)}")
    parser.add_argument("--drop-every", type=float, default=20.0, help="mean seconds between a client's own drops")
    parser.add_argument("--window", type=int, default=2, help="chats a client may have awaiting an answer")
    parser.add_argument("--pause", type=float, default=0.5, help="longest pause between a client's chats")
    parser.add_argument("--llm", choices=("offline", "fake"), default="offline")
    parser.add_argument("--cancels", type=float, default=0.1, help="share of chats followed by a cancel of one owed")
    parser.add_argument(
        "--on-busy", default="enqueue,reject,interrupt", help="each chat's on_busy, at random from this list ('': none)"
    )
    parser.add_argument("--drain", type=float, default=30.0, help="longest final drain, seconds")
    parser.add_argument("--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/soak.json")
    parser.add_argument("--log-dir", type=Path, help="default: bench/results/logs/<namespace>")
    parser.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.duration = 20, 30.0
    args.chaos = [a for a in args.chaos.split(",") if a]
    unknown = set(args.chaos) - set(CHAOS_ACTIONS)
    if unknown:
        parser.error(f"unknown chaos actions: {', '.join(sorted(unknown))}")
    if args.seed is None:
        args.seed = random.randrange(2**32)
    return args


def service_env(args: argparse.Namespace, namespace: str, secret: str) -> dict[str, str]:
    """Limits raised so they never interfere; short reply timeout; no database, no real LLM."""
    return {
        "NATS_URL": args.nats_url,
        "PAM_NATS_NAMESPACE": namespace,
        "JWT_SECRET": secret,
        "ENVIRONMENT": "development",
        "PAM_LOG_LEVEL": args.log_level,
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
        "DATABASE_URL": "",
        "PYTHONUNBUFFERED": "1",
        "PAM_RATE_BURST": "100000",
        "PAM_RATE_PER_SECOND": "10000",
        "PAM_USER_MESSAGES_PER_MINUTE": "1000000",
        "PAM_IP_CONNECTS_PER_MINUTE": "1000000",
        "PAM_REPLY_TIMEOUT_SECONDS": str(REPLY_TIMEOUT_SECONDS),
        "PAM_PROGRESS_INTERVAL_SECONDS": "1",
        "PAM_SHUTDOWN_GRACE_SECONDS": "8",
        "PAM_METRICS_PORT": "0",
    }


def make_clients(args: argparse.Namespace, secret: str, ports: list[int], phases: Phases) -> list[SoakClient]:
    settings = load_auth_settings({"JWT_SECRET": secret})
    behaviour = Behaviour(
        window=args.window,
        pause=args.pause,
        drop_every=args.drop_every,
        patience=2 * REPLY_TIMEOUT_SECONDS,
        directive=SLOW_ANSWER_DIRECTIVE if args.llm == "fake" else "",
        cancels=args.cancels,
        on_busy=tuple(policy for policy in args.on_busy.split(",") if policy),
    )
    rng = random.Random(args.seed)
    users = [f"soak-user-{i + 1:03d}" for i in range(args.clients)]
    return [
        SoakClient(user, mint_token(settings, user), ports, behaviour, phases, rng.randrange(2**32)) for user in users
    ]


async def soak(args: argparse.Namespace, stack: Stack, namespace: str, secret: str) -> dict[str, Any]:
    """Start the stack, run the load with its chaos, drain, and account for every chat."""
    names = Subjects(namespace)
    nc = await nats.connect(args.nats_url)
    _cancel_on_sigterm()
    try:
        print(f"starting the stack (namespace {namespace}, logs in {stack.log_dir})", flush=True)
        await stack.start(nc, ORCHESTRATORS, fake_llm=args.llm == "fake")
        t0 = time.monotonic()
        stack.begin_load(t0)
        settle_end = t0 + args.duration + SETTLE_SECONDS
        phases = Phases(t0=t0, load_end=t0 + args.duration, settle_end=settle_end, deadline=settle_end + args.drain)
        journal = Journal(nc.jetstream(), names, t0)
        await journal.start()
        clients = make_clients(args, secret, stack.ports, phases)
        print(f"load: {args.clients} clients for {args.duration:g} s; chaos: {', '.join(args.chaos) or 'none'}")
        async with asyncio.timeout(phases.deadline - time.monotonic() + 2 * 60):
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(stack.run_chaos(args.chaos, t0, args.duration))
                tasks.create_task(watch_drain(clients, journal, phases))
                tasks.create_task(show_progress(clients, journal, phases))
                for client in clients:
                    tasks.create_task(client.run())
        await journal.stop()
        await asyncio.to_thread(stack.close)  # so every log line is on disk before the accounting quotes it
        kept = await kept_finals(nc.jetstream(), names, to_explain(clients, journal))
        report = account(clients, journal, stack.timeline, stack.log_dir, kept)
        return {**report, "elapsed_seconds": round(time.monotonic() - t0, 1)}
    finally:
        await asyncio.to_thread(stack.close)
        await forget(nc, names)
        await nc.close()


def _cancel_on_sigterm() -> None:
    """SIGTERM ends the soak like Ctrl-C does: tasks cancelled, every child process stopped."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def watch_drain(clients: list[SoakClient], journal: Journal, phases: Phases) -> None:
    """End the final drain once every client has resumed and every chat a gateway read is answered."""
    await asyncio.sleep(max(0.0, phases.load_end - time.monotonic()))
    while time.monotonic() < phases.deadline:
        resumed = all(c.final_resume_done for c in clients)
        if resumed and not outstanding(clients, journal) and await journal.caught_up():
            break
        await asyncio.sleep(DRAIN_POLL_SECONDS)
    phases.done.set()


async def show_progress(clients: list[SoakClient], journal: Journal, phases: Phases) -> None:
    """A line every few seconds, so a long run shows it is alive."""
    while not phases.done.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(phases.done.wait(), PROGRESS_EVERY_SECONDS)
        records = [r for c in clients for r in c.chats.values()]
        answered = sum(1 for r in records if r.finals)
        print(
            f"  [{phases.now():7.1f} s] written {sum(1 for r in records if r.written_at is not None)}, "
            f"read by gateways {len(journal.read)}, answered {answered}, "
            f"owed {outstanding(clients, journal)}",
            flush=True,
        )


async def forget(nc: Client, names: Subjects) -> None:
    """Remove what this run's namespace left in NATS: its frames, events and rate-limit streams."""
    js = nc.jetstream()
    for stream in (names.frames_stream, names.events_stream, f"KV_{names.rate_bucket}"):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    namespace = f"soak{uuid.uuid4().hex[:10]}"
    secret = secrets.token_urlsafe(32)
    log_dir = args.log_dir or ROOT / "bench/results/logs" / namespace
    log_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(service_env(args, namespace, secret), log_dir, GATEWAYS)
    try:
        report = asyncio.run(soak(args, stack, namespace, secret))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("soak interrupted; every service it started is stopped", file=sys.stderr)
        return 130
    finally:
        stack.close()
    passed = report["chats"]["lost"] == 0 and report["chats"]["duplicated"] == 0
    config = {k: v for k, v in vars(args).items() if k not in ("json", "log_dir", "quick")}
    report = {"passed": passed, "config": config, "namespace": namespace, "log_dir": str(log_dir), **report}
    report |= {"restarts": stack.restarts, "timeline": stack.timeline}
    print(table(report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"{'PASS' if passed else 'FAIL'}: JSON in {args.json}, service logs in {log_dir}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
