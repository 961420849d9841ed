"""Which uvicorn implementations a server runs with (WebSocket protocol, event loop, HTTP parser).

``None`` means "whatever the program picks by itself", so the default run measures the
gateway exactly as ``pam-gateway`` starts it.  The options travel to child processes as
``BENCH_UVICORN_*`` environment variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

WS_IMPLEMENTATIONS = ("websockets", "websockets-sansio", "wsproto")
_ENV = {"ws": "BENCH_UVICORN_WS", "loop": "BENCH_UVICORN_LOOP", "http": "BENCH_UVICORN_HTTP"}


@dataclass(frozen=True)
class ServerOptions:
    ws: str | None = None
    loop: str | None = None
    http: str | None = None

    @property
    def is_default(self) -> bool:
        return self.ws is None and self.loop is None and self.http is None

    @property
    def label(self) -> str:
        if self.is_default:
            return "default"
        return " ".join(f"{key}={value}" for key, value in self._items())

    def _items(self) -> list[tuple[str, str]]:
        return [(key, value) for key in _ENV if (value := getattr(self, key)) is not None]

    def to_env(self) -> dict[str, str]:
        return {_ENV[key]: value for key, value in self._items()}

    def uvicorn_kwargs(self) -> dict[str, str]:
        return dict(self._items())

    @classmethod
    def from_env(cls) -> ServerOptions:
        return cls(**{key: os.environ.get(name) or None for key, name in _ENV.items()})


def resolved(options: ServerOptions) -> dict[str, str]:
    """What uvicorn's ``auto`` choices come to on this machine, for the results."""
    import importlib.util

    def have(module: str) -> bool:
        return importlib.util.find_spec(module) is not None

    return {
        "ws": options.ws or ("websockets-sansio" if have("websockets") else "wsproto"),
        "loop": options.loop or ("uvloop" if have("uvloop") else "asyncio"),
        "http": options.http or ("httptools" if have("httptools") else "h11"),
    }
