"""Under CI=true a skip for something missing (Chromium, a Docker engine) fails, naming it.

Each case runs pytest on real tests of this suite, in a child process, with the environment CI has.
"""

from __future__ import annotations

import os
import subprocess
import sys

from support.processes import ROOT

BROWSER_TEST = "tests/e2e/test_chat_page.py::test_errors_are_shown_in_plain_words"
DOCKER_TEST = "tests/e2e/test_compose_stack.py::test_the_stack_comes_from_the_pinned_compose_v2"
NO_ENGINE = "unix:///nonexistent/docker.sock"
NO_CHROMIUM = "/nonexistent/chromium"


def run_pytest(test: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {name: value for name, value in os.environ.items() if name != "CI"}
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", test]
    return subprocess.run(argv, cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120)


def test_without_chromium_a_ci_run_fails_with_one_line_saying_so():
    run = run_pytest(BROWSER_TEST, CI="true", PAM_TEST_CHROMIUM=NO_CHROMIUM)
    assert run.returncode != 0, run.stdout
    assert f"CI=true, and this test may not skip: no Chromium at {NO_CHROMIUM}" in run.stdout, run.stdout


def test_without_chromium_a_local_run_skips_and_lists_the_skip():
    run = run_pytest(BROWSER_TEST, PAM_TEST_CHROMIUM=NO_CHROMIUM)
    assert run.returncode == 0, run.stdout
    assert f"SKIPPED [1] {BROWSER_TEST.split('::')[0]}" in run.stdout and NO_CHROMIUM in run.stdout, run.stdout


def test_without_a_docker_engine_a_ci_run_fails_with_one_line_saying_so():
    run = run_pytest(DOCKER_TEST, CI="true", DOCKER_HOST=NO_ENGINE)
    assert run.returncode != 0, run.stdout
    assert "CI=true, and this test may not skip: no Docker engine" in run.stdout, run.stdout
