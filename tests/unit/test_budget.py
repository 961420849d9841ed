"""Budget arithmetic: keys per user and UTC period, when a period resets, what an answer costs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pam_orchestrator.engine import Usage
from pam_orchestrator.spend import usage_spent
from pam_shared.budget import Budgets, Spent, estimate_tokens, key, marker_key, resets_at
from pam_shared.settings import BudgetSettings, ConfigError, load_gateway_settings, load_orchestrator_settings
from pam_shared.subjects import Subjects, user_token

USER = "7d2b6a8e-1c3f-4e5a-9b0d-2f4e6a8c0b1d"
PROMPT = [{"role": "system", "content": "s" * 40}, {"role": "user", "content": "u" * 9}]
"""10 + 3 tokens by the 4-characters rule."""


def test_keys_start_with_the_user_then_the_utc_period():
    at = datetime(2026, 12, 2, 23, 30, tzinfo=UTC)
    assert key(USER, "day", at) == f"{USER}.day.20261202"
    assert key(USER, "month", at) == f"{USER}.month.202612"
    assert marker_key(USER, "day", at) == f"{USER}.spent.day.20261202"  # also under the user's prefix
    assert marker_key(USER, "month", at) == f"{USER}.spent.month.202612"
    brisbane = at.astimezone(timezone(timedelta(hours=10)))  # already 3 December there: UTC decides
    assert key(USER, "day", brisbane) == f"{USER}.day.20261202"
    odd = "someone@example.com"
    assert key(odd, "day", at) == f"{user_token(odd)}.day.20261202" and "@" not in key(odd, "day", at)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "day", "month"),
    [
        (utc(2026, 12, 2, 16, 5), utc(2026, 12, 3), utc(2027, 1, 1)),
        (utc(2026, 12, 31, 23, 59), utc(2027, 1, 1), utc(2027, 1, 1)),
        (utc(2028, 2, 28, 12, 0), utc(2028, 2, 29), utc(2028, 3, 1)),
        (utc(2026, 1, 1, 0, 0), utc(2026, 1, 2), utc(2026, 2, 1)),
    ],
)
def test_periods_reset_at_the_next_utc_midnight_and_first_of_the_month(at, day, month):
    assert (resets_at("day", at), resets_at("month", at)) == (day, month)


def test_a_spent_budget_says_which_and_when_in_utc():
    spent = Spent("month", datetime(2027, 1, 1, tzinfo=UTC), 42)
    assert spent.details == {"period": "month", "resets_at": "2027-01-01T00:00:00Z", "retry_after_seconds": 42}
    late = Spent.until_reset("day", datetime(2026, 12, 2, 23, 59, 59, 500000, tzinfo=UTC))
    assert (late.resets_at, late.retry_after_seconds) == (datetime(2026, 12, 3, tzinfo=UTC), 1)


def test_text_is_estimated_at_four_characters_a_token_rounded_up():
    assert [estimate_tokens(t) for t in ("", "abcd", "abcde", "x" * 400)] == [0, 1, 2, 100]


def tokens_spent(usage: Usage | None, prompt: list[dict[str, str]], said: str, failed: bool) -> int:
    spent = usage_spent(usage, prompt, said, failed)
    return 0 if spent is None else (spent.tokens_in or 0) + (spent.tokens_out or 0)


def test_the_providers_usage_is_what_an_answer_costs_when_reported():
    assert tokens_spent(Usage(12, 34), PROMPT, "a long answer " * 50, failed=False) == 46
    assert tokens_spent(Usage(12, 34), PROMPT, "", failed=True) == 46  # reported, then failed: still charged


def test_an_answer_without_usage_is_estimated_from_the_prompt_and_what_was_streamed():
    assert tokens_spent(None, PROMPT, "w" * 21, failed=False) == 13 + 6
    assert tokens_spent(None, PROMPT, "w" * 21, failed=True) == 13 + 6  # cut mid-stream: not free
    assert tokens_spent(Usage(None, 5), PROMPT, "w" * 21, failed=False) == 13 + 5  # whatever is missing


def test_a_request_that_failed_before_anything_was_said_costs_nothing():
    assert usage_spent(None, PROMPT, "", failed=True) is None


async def test_with_no_budget_set_a_chat_costs_no_key_value_work():
    budgets = Budgets(None, "UNUSED", BudgetSettings(0, 0))  # type: ignore[arg-type]  # touching it would fail
    assert not budgets.enabled
    await budgets.debit(USER, 500)


def test_budget_settings_are_read_by_gateway_and_orchestrator():
    env = {"PAM_USER_TOKENS_PER_DAY": "20000", "PAM_USER_TOKENS_PER_MONTH": "300000"}
    assert load_gateway_settings(env).budget == BudgetSettings(20000, 300000)
    assert load_orchestrator_settings(env).budget == BudgetSettings(20000, 300000)
    assert load_gateway_settings({}).budget == BudgetSettings(0, 0)
    with pytest.raises(ConfigError, match="PAM_USER_TOKENS_PER_DAY must be at least 0"):
        load_gateway_settings({"PAM_USER_TOKENS_PER_DAY": "-1"})
    assert Subjects("pam").budget_bucket == "PAM_BUDGETS"
