"""The WHEELS WINS frontend's context (location, time zone, date) travels to the model's prompt."""

from __future__ import annotations

import httpx
from support.client import connected
from support.tokens import token

SHIPPED_CONTEXT = {
    "user_id": "user-1",
    "current_page": "/wheels",
    "input_mode": "text",
    "timezone": "Australia/Perth",
    "environment": "production",
    "timestamp": 1795991400000,
    "current_date": "2026-11-25",
    "user_location": {"lat": -17.9614, "lng": 122.2359, "city": "Broome", "region": "Western Australia"},
}


async def test_the_users_city_region_and_time_zone_reach_the_system_prompt(stack, llm_env, fake_openai):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway()
    async with await connected(gateway.ws_url(f"/ws/user-1?token={token('user-1')}")) as client:
        frames = await client.chat("cheapest diesel near me?", "user-1", context=SHIPPED_CONTEXT)
    assert frames[-1]["type"] == "chat_response"

    async with httpx.AsyncClient() as http:
        seen = (await http.get(fake_openai.removesuffix("/v1") + "/_requests")).json()
    system = seen[-1]["messages"][-2]["content"]
    assert "Broome, Western Australia (-17.9614, 122.2359)" in system
    assert "(Australia/Perth)" in system and "Their local time is" in system
