"""How many tokens an answer cost, for the user's budget: the provider's count, else an estimate.

An answer cut short (a dead stream, the deadline, an error after tokens) often ends without
the provider's usage, yet the provider charged for it: so nothing is free by disconnecting,
whatever was not reported is estimated from the text at about 4 characters a token (the
prompt from the characters sent, the completion from what was streamed).  A request that
failed before the model said anything, with no usage, cost nothing.
"""

from __future__ import annotations

from pam_shared.budget import estimate_tokens

from pam_orchestrator.engine import Usage


def usage_spent(usage: Usage | None, prompt: list[dict[str, str]], said: str, failed: bool) -> Usage | None:
    """``usage`` with its tokens in and out each estimated when not reported; None when nothing was spent."""
    tokens_in = usage.tokens_in if usage is not None else None
    tokens_out = usage.tokens_out if usage is not None else None
    if tokens_in is None and tokens_out is None and failed and not said:
        return None
    if tokens_in is None:
        tokens_in = sum(estimate_tokens(message["content"]) for message in prompt)
    if tokens_out is None:
        tokens_out = estimate_tokens(said)
    return Usage(tokens_in, tokens_out, usage.cached_tokens if usage is not None else None)
