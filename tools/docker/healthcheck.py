"""Docker HEALTHCHECK for the PAM service images (needs only what pam-shared installs).

    python healthcheck.py http URL         healthy when URL answers with a 2xx status
    python healthcheck.py service KIND     healthy when this container's own instance of the
                                           NATS service KIND (orchestrator, persistence) answers

The second form asks ``$SRV.INFO`` (nats.micro discovery) and looks for the instance id this
container's service registered: ``PAM_INSTANCE_ID``, or by default one starting with the
container's hostname.  So a replica is only healthy while it can itself take work.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import urllib.request

import nats
from pam_shared import bus
from pam_shared.settings import load_settings

TIMEOUT_SECONDS = 3.0
DISCOVERY_WINDOW_SECONDS = 0.5


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
        return 200 <= response.status < 300


def is_mine(instance: str) -> bool:
    if os.environ.get("PAM_INSTANCE_ID"):
        return instance == os.environ["PAM_INSTANCE_ID"]
    host = socket.gethostname().split(".")[0].replace("_", "-")
    return instance.startswith(f"{host}-")


async def service_ok(kind: str) -> bool:
    settings = load_settings()
    name = getattr(settings.subjects, f"{kind}_service")
    options = bus.connect_options(settings.nats)
    nc = await nats.connect(**options, connect_timeout=TIMEOUT_SECONDS, max_reconnect_attempts=0)
    try:
        replies = await bus.gather_replies(nc, f"$SRV.INFO.{name}", DISCOVERY_WINDOW_SECONDS)
    finally:
        await nc.close()
    instances = [(json.loads(reply.data).get("metadata") or {}).get("instance", "") for reply in replies]
    return any(is_mine(instance) for instance in instances)


def main() -> None:
    mode, target = sys.argv[1:3]
    try:
        healthy = http_ok(target) if mode == "http" else asyncio.run(service_ok(target))
    except Exception as exc:  # any failure to answer is "unhealthy", with the reason in docker inspect
        print(f"unhealthy: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    raise SystemExit(0 if healthy else 1)


if __name__ == "__main__":
    main()
