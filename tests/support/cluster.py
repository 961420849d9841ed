"""A NATS cluster with JetStream on free loopback ports, for tests that stop and start nodes.

Every node is the nats-server in ``.venv/bin`` with its own store under ``root``, routes to
every other node, and a monitoring port this helper asks for JetStream's state (a node's
``/healthz`` says ok once it is current with the meta leader and with every stream and
consumer it holds).  A stopped node keeps its ports and its store, so starting it again
brings it back as the same member.  ``close`` stops every node it started.

The calls block; async tests run them with ``asyncio.to_thread`` when sockets are busy.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from support.processes import BIN, ServiceProcess, free_port

NATS_SERVER = BIN / "nats-server"
READY = "Server is ready"
POLL_SECONDS = 0.1


class NatsCluster:
    def __init__(self, size: int, root: Path, name: str = "pam-test") -> None:
        self.root = root
        self.name = name
        self.client_ports = [free_port() for _ in range(size)]
        self.route_ports = [free_port() for _ in range(size)]
        self.monitor_ports = [free_port() for _ in range(size)]
        self.nodes = [self._node(i) for i in range(size)]

    def _node(self, index: int) -> ServiceProcess:
        routes = ",".join(f"nats://127.0.0.1:{p}" for i, p in enumerate(self.route_ports) if i != index)
        store = self.root / f"node-{index}"
        store.mkdir(parents=True, exist_ok=True)
        argv = [
            str(NATS_SERVER), "-n", f"{self.name}-{index}", "-a", "127.0.0.1",
            "-p", str(self.client_ports[index]), "-m", str(self.monitor_ports[index]),
            "-js", "-sd", str(store), "--cluster_name", self.name,
            "--cluster", f"nats://127.0.0.1:{self.route_ports[index]}", "--routes", routes,
        ]  # fmt: skip
        return ServiceProcess(f"nats-{index}", argv, {}, self.root)

    def url(self, index: int) -> str:
        return f"nats://127.0.0.1:{self.client_ports[index]}"

    @property
    def urls(self) -> str:
        """Every node, comma-separated."""
        return ",".join(self.url(i) for i in range(len(self.nodes)))

    @property
    def running(self) -> list[int]:
        return [i for i, node in enumerate(self.nodes) if node.running]

    def start(self, timeout: float = 30.0) -> NatsCluster:
        """Start every node and wait until JetStream is healthy on all of them."""
        try:
            for node in self.nodes:
                node.start()
            for node in self.nodes:
                node.wait_for(READY, timeout)
            self.wait_healthy(timeout)
        except BaseException:
            self.close()
            raise
        return self

    def stop_node(self, index: int) -> None:
        """Shut one node down (SIGTERM, then SIGKILL if it lingers)."""
        self.nodes[index].stop()

    def kill_node(self, index: int) -> None:
        self.nodes[index].kill()

    def start_node(self, index: int, timeout: float = 30.0) -> None:
        """Start a stopped node again; it rejoins with its ports and store."""
        node = self.nodes[index]
        if not node.running:
            node.start().wait_for(READY, timeout)

    def restore(self, timeout: float = 60.0) -> None:
        """Every node running and JetStream healthy again (a test's cleanup needs the cluster)."""
        for index in range(len(self.nodes)):
            self.start_node(index)
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Block until JetStream has a meta leader and every running node is current."""
        deadline = time.monotonic() + timeout
        while not (self._leader() and all(self._healthy(i) for i in self.running)):
            if time.monotonic() > deadline:
                states = {i: self._get(i, "/healthz") for i in self.running}
                raise AssertionError(f"JetStream not healthy after {timeout} s: {states}")
            time.sleep(POLL_SECONDS)

    def meta_leader(self) -> str | None:
        """The name of the node leading JetStream's meta group, if any node knows one."""
        return self._leader()

    def _leader(self) -> str | None:
        for i in self.running:
            jsz = self._get(i, "/jsz")
            if isinstance(jsz, dict) and (leader := jsz.get("meta_cluster", {}).get("leader")):
                return str(leader)
        return None

    def _healthy(self, index: int) -> bool:
        health = self._get(index, "/healthz")
        return isinstance(health, dict) and health.get("status") == "ok"

    def _get(self, index: int, path: str) -> object:
        """A monitoring endpoint's JSON (error answers included); None when the node is unreachable."""
        url = f"http://127.0.0.1:{self.monitor_ports[index]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            return json.loads(error.read() or b"null")
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> NatsCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
