"""The error-code table: complete, typed (a misspelt code fails type checking), one source for frames and REST."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
from mypy import api as mypy
from pam_shared.errors import ERRORS, ErrorCode, error_body, error_frame

ROOT = Path(__file__).resolve().parents[2]


def test_every_code_has_words_and_an_http_error_status():
    assert set(get_args(ErrorCode)) == set(ERRORS)
    for code, problem in ERRORS.items():
        assert problem.message.endswith((".", ")")), code
        assert 400 <= problem.status < 600, code


def test_the_wire_strings_stay_as_clients_know_them():
    frame = error_frame("rate_limited", {"retry_after": 1.5}, "m1")
    assert (frame.code, frame.message, frame.details, frame.reply_to) == (
        "rate_limited",
        "You're sending messages too quickly. Please wait a moment.",
        {"retry_after": 1.5},
        "m1",
    )


def test_budget_exceeded_says_when_the_budget_resets_on_the_socket_and_over_rest():
    details = {"period": "day", "resets_at": "2026-12-03T00:00:00Z", "retry_after_seconds": 3600}
    frame = error_frame("budget_exceeded", details)
    assert frame.message == "You have used up your PAM allowance for this day. It resets at 2026-12-03T00:00:00Z (UTC)."
    body = error_body("budget_exceeded", details=details)
    assert body == {
        "error": "budget_exceeded",
        "error_code": "budget_exceeded",
        "message": frame.message,
        "details": details,
    }
    assert ERRORS["budget_exceeded"].status == 429


@pytest.mark.timeout(120)
def test_a_misspelt_code_fails_type_checking(tmp_path):
    checked = tmp_path / "misspelt.py"
    checked.write_text(
        "from pam_shared.errors import error_body, error_frame\n"
        'error_frame("rate_limitted")\n'
        'error_body("budget_exceded")\n'
        'error_frame("budget_exceeded")\n'
    )
    config = str(ROOT / "pyproject.toml")
    out, _, status = mypy.run(["--no-incremental", "--config-file", config, str(checked)])
    assert status == 1, out
    assert "misspelt.py:2: error" in out and "'rate_limitted'" in out, out
    assert "misspelt.py:3: error" in out and "'budget_exceded'" in out, out
    assert out.count(": error:") == 2, out  # the right spelling passes
