"""Start the project's services with other options, without editing services/.

``python -m bench.variants gateway`` runs ``pam-gateway``'s own ``main`` with the uvicorn
options of ``BENCH_UVICORN_*`` laid over every ``uvicorn.Config`` it builds (which
``uvicorn.run`` builds too), and says so on its output.
With ``BENCH_TRACEMALLOC=<file>`` the gateway traces its Python allocations and, on
SIGUSR1, writes the lines that hold the most memory to that file (JSON).
``python -m bench.variants orchestrator`` runs ``pam-orchestrator``'s own ``main``; with
``BENCH_HOLD=off`` no chat takes its conversation turn (what the hold costs, for
``bench.features``: the product has no such setting, since the turn keeps a conversation's
answers in order and tells a stop where its answer runs).  Everything else (settings,
logging, the app) is the service's own code.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import uvicorn

from bench.server_options import ServerOptions

TRACEMALLOC = "BENCH_TRACEMALLOC"
HOLD = "BENCH_HOLD"
TOP_LINES = 25


def _dump_allocations(path: str) -> None:
    stats = tracemalloc.take_snapshot().statistics("lineno")[:TOP_LINES]
    top = [{"where": str(s.traceback[0]), "kb": round(s.size / 1024), "blocks": s.count} for s in stats]
    partial = Path(f"{path}.partial")
    partial.write_text(json.dumps(top, indent=1))
    partial.replace(path)  # readers never see half a file


def _trace_allocations() -> None:
    if path := os.environ.get(TRACEMALLOC):
        tracemalloc.start()
        signal.signal(signal.SIGUSR1, lambda signum, frame: _dump_allocations(path))


def gateway() -> None:
    _trace_allocations()
    overrides = ServerOptions.from_env().uvicorn_kwargs()
    original = uvicorn.Config.__init__

    def init(self: uvicorn.Config, app: Any, *args: Any, **kwargs: Any) -> None:
        original(self, app, *args, **{**kwargs, **overrides})
        print(f"bench.variants: uvicorn ws={self.ws} loop={self.loop} http={self.http}", flush=True)

    uvicorn.Config.__init__ = init  # type: ignore[method-assign]
    from pam_gateway.main import main

    main()


def orchestrator() -> None:
    if os.environ.get(HOLD) == "off":
        from pam_orchestrator.holds import Holds

        async def no_turn(*args: Any, **kwargs: Any) -> None:
            return None  # as for a chat whose hold is unavailable: answered at once, nothing to give up

        Holds.take = no_turn  # type: ignore[assignment,method-assign]
        print("bench.variants: orchestrator without the conversation hold", flush=True)
    from pam_orchestrator.main import main

    main()


if __name__ == "__main__":
    {"gateway": gateway, "orchestrator": orchestrator}[sys.argv[1] if len(sys.argv) > 1 else "gateway"]()
