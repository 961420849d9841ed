"""The one way a command gives up: a sentence for the user, then a non-zero exit."""

from __future__ import annotations


class Failure(Exception):
    """Raised with a one-line reason; ``pam`` prints it after ❌ and exits 1."""
