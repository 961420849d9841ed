"""Per-user token budgets end to end: debited by any orchestrator, refused by any gateway, in both
dialects and over REST, with the reset time; an answer cut short is not free."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime, timedelta

import httpx
from support.client import connected
from support.tokens import token
from support.wheels_client import ShippedClient, rest_chat

BUDGET = {"PAM_USER_TOKENS_PER_DAY": "100"}
WAIT_SECONDS = 10.0


async def usage(gateway, user: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as http:
        return await http.get(gateway.http_url("/api/v1/usage"), headers={"Authorization": f"Bearer {token(user)}"})


async def used(gateway, user: str, tokens: int) -> dict:
    """The user's usage once its day shows ``tokens`` spent (debits land just after an answer ends)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        body = (await usage(gateway, user)).json()
        if body["day"]["used"] == tokens or time.monotonic() > deadline:
            assert body["day"]["used"] == tokens, body
            return body
        await asyncio.sleep(0.05)


def next_midnight() -> datetime:
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)


async def requests_for(fake_openai: str, text: str) -> list[dict]:
    async with httpx.AsyncClient() as http:
        seen = (await http.get(fake_openai.removesuffix("/v1") + "/_requests")).json()
    return [body for body in seen if text in body["messages"][-1]["content"]]


async def test_a_user_over_budget_is_refused_with_the_reset_time_while_another_is_answered(stack, llm_env, fake_openai):
    first = stack.orchestrator(**llm_env, **BUDGET, PAM_INSTANCE_ID="first")
    north, south = stack.gateway(**BUDGET), stack.gateway(**BUDGET)
    ana = await connected(north.ws_url(f"/ws/ana?token={token('ana')}"))
    shipped = await ShippedClient.connect(south.ws_url(""), "ana", token("ana"))
    try:
        assert (await ana.chat("[usage:40:20] hello", "ana"))[-1]["type"] == "chat_response"
        spent = await used(south, "ana", 60)  # the provider's usage, not an estimate
        resets = next_midnight().isoformat().replace("+00:00", "Z")
        assert spent["day"] == {"used": 60, "limit": 100, "resets_at": resets}
        assert spent["month"]["used"] == 60 and spent["month"]["limit"] is None
        stack.orchestrator(**llm_env, **BUDGET, PAM_INSTANCE_ID="second")
        first.stop()  # the second orchestrator answers from here on, and adds to the first's debit
        await shipped.frame()
        assert (await shipped.ask("[usage:30:20] again"))["type"] == "chat_response"  # 60 of 100: allowed
        await used(north, "ana", 110)

        refused = await ana.chat("one more", "ana", message_id="m3")
        assert [(f["type"], f["code"], f["reply_to"]) for f in refused] == [("error", "budget_exceeded", "m3")]
        details = refused[0]["details"]
        assert (details["period"], details["resets_at"]) == ("day", resets)
        left = (next_midnight() - datetime.now(UTC)).total_seconds()
        assert abs(details["retry_after_seconds"] - left) <= 5
        assert resets in refused[0]["message"]

        wheels = await shipped.ask("one more, please")
        assert (wheels["type"], wheels["error"], wheels["error_code"]) == ("error", True, "budget_exceeded")
        assert resets in wheels["message"] and wheels["details"]["period"] == "day"

        rest = await rest_chat(north.http_url(""), "ana", token("ana"), "one more over REST")
        assert rest.status_code == 429 and rest.json()["error_code"] == "budget_exceeded"
        assert rest.json()["details"]["resets_at"] == resets
        assert abs(int(rest.headers["Retry-After"]) - left) <= 5

        bo = await connected(south.ws_url(f"/ws/bo?token={token('bo')}"))
        assert (await bo.chat("[usage:40:20] my turn", "bo"))[-1]["type"] == "chat_response"
        await bo.close()
        await used(north, "bo", 60)
        assert not await requests_for(fake_openai, "one more")  # refused before the model was asked
        assert (await used(south, "ana", 110))["day"]["used"] == 110  # and refusals cost nothing
    finally:
        await ana.close()
        await shipped.close()
    assert (await usage(north, "ana")).status_code == 200
    async with httpx.AsyncClient(timeout=5) as http:
        anonymous = await http.get(north.http_url("/api/v1/usage"))
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "token_invalid"


async def test_a_stream_cut_mid_answer_still_debits_the_streamed_tokens(stack, llm_env, fake_openai):
    limits = {"PAM_USER_TOKENS_PER_DAY": "100000", "PAM_USER_TOKENS_PER_MONTH": "1000000"}
    stack.orchestrator(**llm_env, **limits, PAM_OPENAI_MAX_RETRIES="0")
    gateway = stack.gateway(**limits)
    async with await connected(gateway.ws_url(f"/ws/cy?token={token('cy')}")) as client:
        failed = await client.chat("plan my trip [status:500]", "cy")  # no answer, nothing to pay for
        assert failed[-1]["code"] == "llm_error"
        story = " ".join(f"outback-story-part-{i}" for i in range(40))
        cut = await client.chat(f"tell me a story [say:{story}] [cut]", "cy")
    assert cut[-1]["type"] == "chat_response" and cut[-1]["truncated"] == "error"
    streamed = "".join(f["delta"] for f in cut[:-1])
    assert streamed and len(streamed) < len(story)  # half the story reached the user, then the stream died
    (sent,) = await requests_for(fake_openai, "tell me a story")
    prompt = sum(math.ceil(len(message["content"]) / 4) for message in sent["messages"])
    spent = await used(gateway, "cy", prompt + math.ceil(len(streamed) / 4))
    assert spent["month"]["used"] == spent["day"]["used"] and spent["month"]["limit"] == 1000000
