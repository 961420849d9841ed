"""Which kept turns a chat sees (persistence's conversation rule), and how a write merges."""

from __future__ import annotations

from pam_orchestrator.turns import Kept, conversation, merged, placed_before
from pam_shared.internal import Turn

GAP = 60.0


def kept(*times: float) -> list[Kept]:
    return [Kept("user" if i % 2 == 0 else "assistant", f"t{at:g}", at) for i, at in enumerate(times)]


def contents(turns: list[Turn]) -> list[str]:
    return [turn.content for turn in turns]


def test_a_chat_sees_the_turns_before_it_within_the_limit():
    assert contents(conversation(kept(1, 2, 3, 4), before=5, gap=GAP, limit=3)) == ["t2", "t3", "t4"]


def test_turns_at_or_after_the_chat_are_not_its_history():
    assert contents(conversation(kept(1, 2, 5, 6), before=5, gap=GAP, limit=10)) == ["t1", "t2"]


def test_an_idle_gap_starts_a_new_conversation():
    assert contents(conversation(kept(1, 2, 100, 101), before=102, gap=GAP, limit=10)) == ["t100", "t101"]
    assert conversation(kept(1, 2), before=2 + GAP + 1, gap=GAP, limit=10) == []


def test_concurrent_writes_merge_in_time_order_without_doubling_a_turn():
    theirs = kept(1, 2, 10, 12)
    mine = [Kept("user", "mine", 5), Kept("assistant", "my answer", 13)]
    once = merged(theirs, mine, limit=10)
    assert [t.content for t in once] == ["t1", "t2", "mine", "t10", "t12", "my answer"]
    assert merged(once, mine, limit=10) == once
    assert [t.content for t in merged(theirs, mine, limit=3)] == ["t10", "t12", "my answer"]


def test_an_empty_answer_is_not_kept():
    assert merged([], [Kept("user", "hi", 1), Kept("assistant", "", 2)], limit=10) == [Kept("user", "hi", 1)]


def test_persistences_turns_are_placed_in_order_just_before_the_chat():
    turns = [Turn("user", "a"), Turn("assistant", "b")]
    placed = placed_before(turns, at=1000.0)
    assert [t.content for t in placed] == ["a", "b"] and placed[0].at < placed[1].at < 1000.0
    assert conversation(placed, before=1000.0, gap=GAP, limit=10) == turns
