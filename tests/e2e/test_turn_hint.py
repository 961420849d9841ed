"""A user's next chat takes its conversation turn in one write: the answer before it told the
gateway the revision of the hold it gave up (``Pam-Turn``), and the gateway hands that back.
A chat through another gateway, without it, finds that hold and is told at once it has ended."""

from __future__ import annotations

import nats
from pam_shared.subjects import Subjects, user_token
from support.client import connected
from support.jetstream_calls import JetStreamCalls
from support.tokens import token


async def test_each_chat_after_the_first_costs_its_turn_one_write_and_nothing_else(stack, nats_url, namespace):
    stack.orchestrator()
    gateway = stack.gateway()
    names = Subjects(namespace)
    nc = await nats.connect(nats_url)
    try:
        async with (
            await connected(gateway.ws_url(f"/ws/ann?token={token('ann')}")) as client,
            JetStreamCalls(nc, names.answering_bucket, also=names.released("ann")) as calls,
        ):
            first = await client.chat("hello", message_id="a")
            assert len(await calls.taken()) == 2  # nothing to go by yet: a read, then the write
            answers = [await client.chat(f"and again {n}", message_id=f"b{n}") for n in range(3)]
            seen = await calls.taken()
    finally:
        await nc.close()
    assert [frames[-1]["type"] for frames in (first, *answers)] == ["chat_response"] * 4
    assert (
        seen == [f"$KV.{names.answering_bucket}.{user_token('ann')}"] * 3
    )  # the take, per chat; the release writes nothing


async def test_a_chat_through_another_gateway_after_an_answer_ended_is_answered_at_once(stack):
    """Its gateway has no hint, and the hold it finds looks live for two minutes: asked, the
    holder's orchestrator says it has ended, so the chat is neither queued nor kept a heartbeat."""
    env = {"PAM_PROGRESS_INTERVAL_SECONDS": "60"}  # the heartbeat: a chat queued would wait a minute
    stack.orchestrator(**env)
    stack.orchestrator(**env)
    url = f"/ws/ann?token={token('ann')}"
    one, two = stack.gateway(), stack.gateway()
    async with await connected(one.ws_url(url)) as tab1, await connected(two.ws_url(url)) as tab2:
        first = await tab1.chat("hello", message_id="a")
        second = await tab2.chat("and from the other tab", message_id="b")
    assert first[-1]["type"] == "chat_response"
    assert second[-1]["type"] == "chat_response" and "queued" not in {frame["type"] for frame in second}
