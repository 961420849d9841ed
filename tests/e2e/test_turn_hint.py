"""A user's next chat takes its conversation turn in one write: the answer before it told the
gateway where the turn was given up (``Pam-Turn``), and the gateway hands that back."""

from __future__ import annotations

import nats
from pam_shared.subjects import Subjects, user_token
from support.client import connected
from support.jetstream_calls import JetStreamCalls
from support.tokens import token


async def test_each_chat_after_the_first_costs_its_turn_two_writes_and_nothing_else(stack, nats_url, namespace):
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
            assert len(await calls.taken()) == 3  # nothing to go by yet: a read, then the write
            answers = [await client.chat(f"and again {n}", message_id=f"b{n}") for n in range(3)]
            seen = await calls.taken()
    finally:
        await nc.close()
    assert [frames[-1]["type"] for frames in (first, *answers)] == ["chat_response"] * 4
    assert seen == [f"$KV.{names.answering_bucket}.{user_token('ann')}"] * 6  # take and give up, per chat
