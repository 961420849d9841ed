"""A real nginx (Debian's) on loopback with its own prefix, serving deploy/nginx's routing.

The test's own top-level config lists its gateways and its stand-in old backend as the
upstreams and includes ``deploy/nginx/pam-http.conf`` and ``pam-locations.conf`` as they are,
so what is tested is what is deployed.  Started in the foreground; ready once it accepts.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from support.processes import ROOT, ServiceProcess, free_port

NGINX = Path(os.environ.get("PAM_TEST_NGINX", "/usr/sbin/nginx"))
DEPLOY = ROOT / "deploy" / "nginx"


class Nginx:
    def __init__(self, prefix: Path, gateway_ports: list[int], old_backend_port: int) -> None:
        self.prefix = prefix
        self.port = free_port()
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / "conf").mkdir(exist_ok=True)
        (prefix / "logs").mkdir(exist_ok=True)
        self.conf = prefix / "conf" / "nginx.conf"
        self.conf.write_text(self._config(gateway_ports, old_backend_port))
        self.process = ServiceProcess("nginx", [str(NGINX), "-p", str(prefix), "-c", str(self.conf)], {}, prefix)

    def _config(self, gateway_ports: list[int], old_backend_port: int) -> str:
        gateways = "\n".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;" for port in gateway_ports)
        temp = " ".join(f"{kind}_temp_path {self.prefix}/{kind};" for kind in ("proxy", "fastcgi", "uwsgi", "scgi"))
        return f"""
daemon off;
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/logs/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {self.prefix}/logs/access.log;
    client_body_temp_path {self.prefix}/body; {temp}
    include {DEPLOY}/pam-http.conf;
    upstream pam_gateways {{
        least_conn;
{gateways}
        keepalive 16;
    }}
    upstream old_backend {{ server 127.0.0.1:{old_backend_port}; }}
    server {{
        listen 127.0.0.1:{self.port};
        include {DEPLOY}/pam-locations.conf;
    }}
}}
"""

    def url(self, scheme: str, path: str = "") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def start(self, timeout: float = 15.0) -> Nginx:
        self.process.start()
        _until_accepting(self.port, timeout, self.process)
        return self

    def stop(self) -> None:
        self.process.stop()


def _until_accepting(port: int, timeout: float, process: ServiceProcess) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if not process.running or time.monotonic() > deadline:
                raise RuntimeError(f"nginx is not accepting on {port}: {process.lines[-20:]}") from None
            time.sleep(0.05)


class OldBackend:
    """A stand-in for the backend the frontend used until now: every path answers who it is."""

    def __init__(self) -> None:
        self.port = free_port()
        self.seen: list[str] = []

        async def anything(request: Request) -> JSONResponse:
            self.seen.append(f"{request.method} {request.url.path}")
            return JSONResponse({"backend": "old", "path": request.url.path})

        app = Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST", "PUT", "DELETE"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> OldBackend:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the stand-in old backend did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
