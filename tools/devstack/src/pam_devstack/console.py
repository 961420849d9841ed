"""How ``pam-stack`` prints: every line prefixed with the process it came from, in that process's colour."""

from __future__ import annotations

import os
import sys

RESET = "\x1b[0m"
BOLD = "\x1b[1m"
PALETTE = ("36", "35", "33", "32", "34", "91", "96")
STACK = "stack"


def colour_wanted() -> bool:
    """Colour on a terminal, unless NO_COLOR says otherwise; FORCE_COLOR turns it on anywhere."""
    if os.environ.get("NO_COLOR"):
        return False
    return bool(os.environ.get("FORCE_COLOR")) or sys.stdout.isatty()


class Console:
    def __init__(self, names: list[str], colour: bool | None = None) -> None:
        self.colour = colour_wanted() if colour is None else colour
        self.width = max(len(name) for name in [*names, STACK])
        self.colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}

    def line(self, name: str, text: str) -> None:
        """One line of a child's output."""
        prefix = f"{name:<{self.width}} │"
        if self.colour:
            prefix = f"\x1b[{self.colours.get(name, '0')}m{prefix}{RESET}"
        print(f"{prefix} {text}", flush=True)

    def say(self, marker: str, text: str) -> None:
        """A line from the runner itself."""
        prefix = f"{STACK:<{self.width}} │"
        if self.colour:
            prefix = f"{BOLD}{prefix}{RESET}"
        print(f"{prefix} {marker} {text}", flush=True)
