"""CI cannot go green by skipping: under ``CI=true`` a test that would skip fails instead.

A skip means something the test needs is missing (Chromium, an embedded server, anything
``.ci/run`` is there to provide), and CI must say so.  Only what these machines can never
have, a Docker engine, skips under CI too, through ``not_on_these_machines``.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


class NotOnTheseMachines(pytest.skip.Exception):
    """A skip that stays a skip under CI."""

    __module__ = "builtins"  # as for pytest's own Skipped: listed as "NotOnTheseMachines: <reason>"


def not_on_these_machines(reason: str) -> NoReturn:
    """Skip, even under CI: for what no machine of this project has."""
    raise NotOnTheseMachines(reason, _use_item_location=True)  # listed at the test, not at this line
