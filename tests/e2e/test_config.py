"""Bad configuration stops a service at start with one line naming the variable."""

import os
import subprocess

import pytest
from support.processes import BIN


@pytest.mark.parametrize("command", ["pam-gateway", "pam-orchestrator"])
@pytest.mark.parametrize(
    ("variable", "value"), [("PAM_GATEWAY_PORT", "eighty"), ("NATS_URL", "http://x"), ("ENVIRONMENT", "prod")]
)
def test_bad_configuration_fails_fast_with_one_clear_line(command, variable, value):
    env = {**os.environ, variable: value}
    result = subprocess.run([str(BIN / command)], env=env, capture_output=True, text=True, timeout=30)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1 and variable in lines[0] and "configuration error" in lines[0]
