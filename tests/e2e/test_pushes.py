"""Pushes (proactive alerts, timers going off) never become an answer.

The shipped client takes the first frame with ``response``/``message``/``content`` after a
chat as its answer (``support.wheels_client``); ``proactive_alert`` has a ``content`` and
``timer_expired`` a ``message``.  So while a chat waits, pushes wait behind its answer.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import nats
import pytest
from pam_shared.alerts import AlertRefused, AlertRequest, raise_alert
from pam_shared.protocol import AlertAction
from pam_shared.subjects import Subjects
from support.client import chat_frame, connected
from support.tokens import token
from support.wheels_client import ShippedClient

USER = "5b1c9d2e-3f4a-4b6c-8d7e-9f0a1b2c3d4e"
FUEL_ALERT = '[tool:raise_alert:{"category": "fuel", "priority": "high", "message": "Fuel below 20 percent"}]'


async def until_requested(fake_openai: str, text: str) -> None:
    """Wait until the fake model has the chat: from then on it is pending on the gateway."""
    async with httpx.AsyncClient() as http:
        while True:
            seen = (await http.get(fake_openai.removesuffix("/v1") + "/_requests")).json()
            if any(text in body["messages"][-1]["content"] for body in seen):
                return
            await asyncio.sleep(0.05)


async def test_an_alert_the_model_raises_during_a_chat_arrives_right_after_its_answer(stack, llm_env):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    client = await ShippedClient.connect(gateway.ws_url(""), USER, token(USER))
    try:
        await client.frame()
        answer = await client.ask(f"how is my fuel {FUEL_ALERT}")
        alert = await client.frame()
    finally:
        await client.close()
    assert answer["type"] == "chat_response" and answer["content"] == "Echo: how is my fuel"
    assert alert["type"] == "proactive_alert" and "event_id" in alert
    assert alert["content"]["message"] == "Fuel below 20 percent"
    assert alert["content"]["category"] == "fuel" and alert["content"]["priority"] == "high"


async def test_an_alert_another_service_raises_while_a_chat_waits_is_held_behind_the_answer(
    stack, llm_env, fake_openai, nats_url, namespace
):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    client = await ShippedClient.connect(gateway.ws_url(""), USER, token(USER))
    nc = await nats.connect(nats_url.split(","))
    try:
        await client.frame()
        await client.send_chat("slow one [delay:2]")
        await until_requested(fake_openai, "slow one")
        request = AlertRequest(
            user_id=USER,
            category="weather",
            message="Storm warning for Cairns tonight",
            priority="urgent",
            actions=[AlertAction(label="See the forecast", action="navigate", data="/weather")],
            alert_type="storm",
        )
        receipt = await raise_alert(nc, Subjects(namespace), request)
        answer = await client.answer()
        alert = await client.frame()
    finally:
        await nc.close()
        await client.close()
    assert answer["type"] == "chat_response" and answer["content"] == "Echo: slow one"
    assert alert["type"] == "proactive_alert" and alert["id"] == receipt.alert_id
    assert alert["event_id"] == receipt.event_id
    assert alert["content"]["actions"] == [{"label": "See the forecast", "action": "navigate", "data": "/weather"}]
    assert alert["content"]["alert_type"] == "storm" and alert["content"]["priority"] == "urgent"


async def test_an_alert_with_no_chat_pending_arrives_at_once_on_every_socket_in_its_dialect(stack, nats_url, namespace):
    stack.orchestrator()
    gateway = stack.gateway()
    wheels = await ShippedClient.connect(gateway.ws_url(""), USER, token(USER))
    seed = await connected(gateway.ws_url(f"/ws/{USER}?token={token(USER)}"))
    nc = await nats.connect(nats_url.split(","))
    try:
        await wheels.frame()
        await raise_alert(nc, Subjects(namespace), AlertRequest(user_id=USER, category="budget", message="Over budget"))
        shipped, typed = await wheels.frame(), await seed.recv()
    finally:
        await nc.close()
        await wheels.close()
        await seed.close()
    assert shipped["type"] == "proactive_alert" and shipped["content"]["message"] == "Over budget"
    assert typed["type"] == "proactive_alert" and typed["message"] == "Over budget"
    assert typed["category"] == "budget" and typed["priority"] == "medium" and typed["alert_id"] == shipped["id"]


async def test_a_malformed_alert_is_refused_with_the_reason_and_reaches_no_one(stack, nats_url, namespace):
    stack.orchestrator()
    gateway = stack.gateway()
    seed = await connected(gateway.ws_url(f"/ws/{USER}?token={token(USER)}"))
    nc = await nats.connect(nats_url.split(","))
    try:
        with pytest.raises(AlertRefused, match="message"):
            await raise_alert(nc, Subjects(namespace), AlertRequest(user_id=USER, category="fuel", message=""))
        await seed.send({"type": "ping"})
        after = await seed.recv()
    finally:
        await nc.close()
        await seed.close()
    assert after["type"] == "pong"  # nothing was pushed before it


async def test_on_a_seed_socket_a_push_during_a_chat_comes_after_its_end(stack, llm_env):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    client = await connected(gateway.ws_url(f"/ws/{USER}?token={token(USER)}"))
    try:
        frames = await client.chat(**chat_frame(f"fuel check {FUEL_ALERT}", USER))
        after = await client.recv()
    finally:
        await client.close()
    assert [f["type"] for f in frames if f["type"] == "proactive_alert"] == []
    assert frames[-1]["type"] == "chat_response"
    assert after["type"] == "proactive_alert" and after["message"] == "Fuel below 20 percent"


async def test_a_timer_going_off_while_a_chat_waits_follows_that_answer(stack, llm_env, fake_openai):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    client = await ShippedClient.connect(gateway.ws_url(""), USER, token(USER))
    headers = {"Authorization": f"Bearer {token(USER)}"}
    try:
        await client.frame()
        async with httpx.AsyncClient() as http:
            set_ = await http.post(
                gateway.http_url("/api/v1/pam/timers"), json={"duration_seconds": 2, "label": "tea"}, headers=headers
            )
        await client.send_chat("long think [delay:4]")
        answer = await client.answer()
        answered_at = datetime.now(UTC)
        rang = await client.frame()
    finally:
        await client.close()
    assert set_.status_code == 201
    assert answer["type"] == "chat_response" and answer["content"] == "Echo: long think"
    assert rang["type"] == "timer_expired" and rang["label"] == "tea"
    assert datetime.fromisoformat(rang["scheduled_time"]) < answered_at  # it went off while the chat waited
