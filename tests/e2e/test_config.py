"""Bad configuration stops a service at start with one line naming the variable."""

import os
import subprocess

import pytest
from support.processes import BIN

OWN = {  # a setting only that service reads: the others ignore it
    "pam-gateway": ("PAM_GATEWAY_PORT", "eighty"),
    "pam-orchestrator": ("PAM_CHUNK_WINDOW_MS", "soon"),
    "pam-persistence": ("PAM_PERSIST_BATCH_SIZE", "many"),
}
DATABASE = {"DATABASE_URL": "postgresql://pam@127.0.0.1:1/pam"}


@pytest.mark.parametrize("command", sorted(OWN))
@pytest.mark.parametrize("setting", ["own", ("NATS_URL", "http://x"), ("ENVIRONMENT", "prod")])
def test_bad_configuration_fails_fast_with_one_clear_line(command, setting):
    variable, value = OWN[command] if setting == "own" else setting
    env = {**os.environ, **DATABASE, variable: value}
    result = subprocess.run([str(BIN / command)], env=env, capture_output=True, text=True, timeout=30)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1 and variable in lines[0] and "configuration error" in lines[0]


def test_persistence_without_a_database_url_says_so():
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    result = subprocess.run([str(BIN / "pam-persistence")], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "DATABASE_URL" in result.stderr
