"""The gateway's memory of where each user's turn was given up: good once, and bounded."""

from __future__ import annotations

from pam_gateway.turn_hints import TurnHints


def test_a_hint_is_handed_back_once_and_only_for_its_user():
    hints = TurnHints()
    hints.learn("ann", 7)
    hints.learn("ann", 9)  # a later end: the turn moved on
    assert hints.take("bob") is None
    assert hints.take("ann") == 9
    assert hints.take("ann") is None  # taking the turn changes its revision


def test_past_its_limit_the_user_heard_of_longest_ago_is_forgotten():
    hints = TurnHints(limit=2)
    hints.learn("ann", 1)
    hints.learn("bob", 2)
    hints.learn("ann", 3)  # heard of again: now the most recent
    hints.learn("cy", 4)
    assert (hints.take("bob"), hints.take("ann"), hints.take("cy")) == (None, 3, 4)
