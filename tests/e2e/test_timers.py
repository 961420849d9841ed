"""Timers and alarms: set by the model or over REST, kept by JetStream, rung to every socket.

"set a timer for 20 minutes" becomes the model's ``set_timer`` tool call (the fake model
plays it); at its time every socket of the user gets ``timer_expired`` in its dialect, or,
if none was open, the next socket the user opens.  The Dismiss button posts the timer's id.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import nats
from pam_shared import delivery
from pam_shared.subjects import Subjects
from support.client import connected
from support.tokens import token
from support.wheels_client import ShippedClient

USER = "3e8f1a2b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
PASTA = '[tool:set_timer:{"duration_seconds": 3, "label": "pasta"}]'
RING_TIMEOUT = 30.0


def auth(user: str = USER) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user)}"}


async def rung(client: ShippedClient, timeout: float = RING_TIMEOUT) -> dict:
    """The next ``timer_expired`` the client gets (pongs and other pushes pass by)."""
    while True:
        frame = await client.frame(timeout)
        if frame["type"] == "timer_expired":
            return frame


async def kept_rings(nats_url: str, namespace: str, user: str = USER) -> list[dict]:
    """Every ``timer_expired`` kept for the user: how many times a timer really went off."""
    nc = await nats.connect(nats_url.split(","))
    try:
        frames = [json.loads(m.data) async for m in delivery.replay(nc.jetstream(), Subjects(namespace), user, 0)]
    finally:
        await nc.close()
    return [f for f in frames if f["type"] == "timer_expired"]


async def timers_of(gateway, user: str = USER) -> list[dict]:
    async with httpx.AsyncClient() as http:
        reply = await http.get(gateway.http_url("/api/v1/pam/timers"), headers=auth(user))
    assert reply.status_code == 200, reply.text
    return reply.json()["timers"]


async def set_timer(gateway, body: dict, user: str = USER) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(gateway.http_url("/api/v1/pam/timers"), json=body, headers=auth(user))


async def test_a_timer_the_model_sets_goes_off_once_after_the_gateway_restarts(stack, llm_env, nats_url, namespace):
    stack.orchestrator(**llm_env)
    first = stack.gateway()
    client = await ShippedClient.connect(first.ws_url(""), USER, token(USER))
    try:
        await client.frame()
        answer = await client.ask(f"set a timer for the pasta {PASTA}")
    finally:
        await client.close()
    pending = await timers_of(first)
    first.stop()
    second = stack.gateway()
    client = await ShippedClient.connect(second.ws_url(""), USER, token(USER))
    try:
        welcome = await client.frame()
        expired = await rung(client)
    finally:
        await client.close()
    assert answer["type"] == "chat_response" and answer["ui_actions"][0]["target"] == "timer"
    assert [(t["kind"], t["label"]) for t in pending] == [("timer", "pasta")]
    assert welcome["type"] == "connection"
    assert expired["timer_id"] == pending[0]["timer_id"] and expired["timer_type"] == "timer"
    assert expired["message"] == "pasta: time's up." and expired["scheduled_time"] == pending[0]["due_at"]
    assert len(await kept_rings(nats_url, namespace)) == 1
    assert await timers_of(second) == []


async def test_a_timer_reaches_every_socket_of_its_user_on_every_gateway_in_its_dialect(stack):
    stack.orchestrator()
    one, two = stack.gateway(), stack.gateway()
    shipped = await ShippedClient.connect(one.ws_url(""), USER, token(USER))
    seed = await connected(two.ws_url(f"/ws/{USER}?token={token(USER)}"))
    try:
        await shipped.frame()
        made = await set_timer(one, {"duration_seconds": 2, "label": "laundry"})
        wheels_frame = await rung(shipped)
        seed_frame = await seed.recv(RING_TIMEOUT)
    finally:
        await shipped.close()
        await seed.close()
    timer_id = made.json()["timer"]["timer_id"]
    assert made.status_code == 201
    assert wheels_frame["timer_id"] == timer_id and wheels_frame["label"] == "laundry"
    assert seed_frame["type"] == "timer_expired" and seed_frame["timer_id"] == timer_id
    assert seed_frame["kind"] == "timer" and seed_frame["event_id"] == wheels_frame["event_id"]


async def test_a_timer_that_went_off_with_no_socket_open_arrives_on_the_next_connect_once(stack):
    orchestrator = stack.orchestrator()
    gateway = stack.gateway()
    made = (await set_timer(gateway, {"duration_seconds": 1, "label": "away"})).json()["timer"]
    await asyncio.to_thread(orchestrator.wait_for, f"timer {made['timer_id']} went off")
    client = await ShippedClient.connect(gateway.ws_url(""), USER, token(USER))
    try:
        welcome = await client.frame()
        missed = await client.frame()
    finally:
        await client.close()
    again = await ShippedClient.connect(gateway.ws_url(""), USER, token(USER))
    try:
        await again.frame()
        await again.ping()
        after = await again.frame()
    finally:
        await again.close()
    assert welcome["type"] == "connection"
    assert missed["type"] == "timer_expired" and missed["timer_id"] == made["timer_id"]
    assert after["type"] == "pong"  # shown once: not again on the next connect


async def test_dismiss_takes_the_clients_json_body_or_query_and_needs_the_token(stack):
    orchestrator = stack.orchestrator()
    gateway = stack.gateway()
    gone = (await set_timer(gateway, {"duration_seconds": 1, "label": "gone"})).json()["timer"]
    later = (await set_timer(gateway, {"duration_seconds": 600, "label": "later"})).json()["timer"]
    await asyncio.to_thread(orchestrator.wait_for, f"timer {gone['timer_id']} went off")
    url = gateway.http_url("/api/v1/pam/internal/dismiss-timer")
    async with httpx.AsyncClient() as http:
        anonymous = await http.post(url, json={"timer_id": gone["timer_id"]})
        by_body = await http.post(url, json={"timer_id": gone["timer_id"]}, headers=auth())
        twice = await http.post(url, json={"timer_id": gone["timer_id"]}, headers=auth())
        other_user = await http.post(url, params={"timer_id": later["timer_id"]}, headers=auth("someone-else"))
        by_query = await http.post(url, params={"timer_id": later["timer_id"]}, headers=auth())
        nothing = await http.post(url, content=b"not json", headers=auth())
    client = await ShippedClient.connect(gateway.ws_url(""), USER, token(USER))
    try:
        await client.frame()
        await client.ping()
        after = await client.frame()
    finally:
        await client.close()
    assert anonymous.status_code == 401
    assert by_body.status_code == 200 and by_body.json() == {"success": True, "timer_id": gone["timer_id"]}
    assert twice.status_code == 404 and twice.json()["error_code"] == "timer_not_found"
    assert other_user.status_code == 404
    assert by_query.status_code == 200 and await timers_of(gateway) == []  # a timer still due is cancelled
    assert nothing.status_code == 400 and nothing.json()["error_code"] == "timer_invalid"
    assert after["type"] == "pong"  # a dismissed timer is not delivered on connect


async def test_wake_me_at_6_is_6_in_the_users_own_time_zone(stack, llm_env):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    client = await ShippedClient.connect(gateway.ws_url(""), USER, token(USER))
    try:
        await client.frame()
        await client.ask('wake me at 6 [tool:set_alarm:{"time": "06:00", "label": "wake up"}]')
    finally:
        await client.close()
    [alarm] = await timers_of(gateway)
    brisbane = ZoneInfo("Australia/Brisbane")  # the shipped client's context says where the user is
    due = datetime.fromisoformat(alarm["due_at"]).astimezone(brisbane)
    assert alarm["kind"] == "alarm" and alarm["label"] == "wake up" and alarm["timezone"] == "Australia/Brisbane"
    assert (due.hour, due.minute) == (6, 0)
    assert timedelta(0) < due - datetime.now(UTC) <= timedelta(days=1)


async def test_an_alarm_at_a_clock_time_in_new_york_goes_off_then(stack):
    stack.orchestrator()
    gateway = stack.gateway()
    new_york = ZoneInfo("America/New_York")
    at = (datetime.now(new_york) + timedelta(seconds=3)).replace(microsecond=0)
    client = await ShippedClient.connect(gateway.ws_url(""), USER, token(USER))
    try:
        await client.frame()
        body = {"time": at.strftime("%H:%M:%S"), "date": at.date().isoformat(), "timezone": "America/New_York"}
        made = await set_timer(gateway, {**body, "label": "call mum"})
        expired = await rung(client)
    finally:
        await client.close()
    assert made.status_code == 201, made.text
    assert expired["timer_type"] == "alarm" and expired["label"] == "call mum"
    assert datetime.fromisoformat(expired["scheduled_time"]) == at
    assert datetime.now(UTC) >= at


async def test_cancel_and_bad_timers_over_rest(stack):
    stack.orchestrator()
    gateway = stack.gateway()
    made = (await set_timer(gateway, {"duration_seconds": 900, "label": "oven"})).json()["timer"]
    bad_zone = await set_timer(gateway, {"time": "06:00", "timezone": "Mars/Olympus"})
    too_long = await set_timer(gateway, {"duration_seconds": 40 * 86400})
    async with httpx.AsyncClient() as http:
        url = gateway.http_url(f"/api/v1/pam/timers/{made['timer_id']}")
        cancelled = await http.delete(url, headers=auth())
        again = await http.delete(url, headers=auth())
    assert bad_zone.status_code == 400 and bad_zone.json()["error_code"] == "timer_invalid"
    assert too_long.status_code == 400
    assert cancelled.status_code == 200 and again.status_code == 404
    assert await timers_of(gateway) == []


async def test_the_timer_tools_cancel_and_list(stack, llm_env):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    await set_timer(gateway, {"duration_seconds": 900, "label": "oven"})
    await set_timer(gateway, {"duration_seconds": 1200, "label": "bread"})
    client = await ShippedClient.connect(gateway.ws_url(""), USER, token(USER))
    try:
        await client.frame()
        await client.ask('cancel the oven one [tool:cancel_timer:{"label": "oven"}]')
        await client.ask("what timers do I have [tool:list_timers:{}]")
        listed = await client.frame()
    finally:
        await client.close()
    assert [t["label"] for t in await timers_of(gateway)] == ["bread"]
    assert listed["type"] == "proactive_alert" and listed["content"]["category"] == "timers"
    assert "bread at " in listed["content"]["message"] and "oven" not in listed["content"]["message"]
