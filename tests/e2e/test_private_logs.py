"""What a chat, an export and an erasure print, at debug level on every process, carries no
message text, no token or key and no location, and neither does any metric label."""

from __future__ import annotations

import httpx
from support.client import connected
from support.leaks import assert_nothing_leaked
from support.persistence import count, until
from support.processes import free_port
from support.tokens import token
from support.wheels_client import rest_chat

QUESTION = "Quokkaberry vanmoth: where to fill up?"
ANSWER = "Try the zanthoxyl roadhouse."
LAT, LNG = -19.6453, 134.1879
CITY, REGION = "Tennant Creek", "Northern Territory"
CONTEXT = {
    "current_page": "/wheels",
    "timezone": "Australia/Darwin",
    "user_location": {"lat": LAT, "lng": LNG, "city": CITY, "region": REGION},
}
DEBUG = {"PAM_LOG_LEVEL": "debug"}


async def test_a_chat_an_export_and_an_erasure_print_no_message_token_key_or_location_at_debug_level(
    database_url, db, stack, llm_env, fake_openai
):
    ports = [free_port() for _ in range(3)]
    stack.persistence(DATABASE_URL=database_url, PAM_METRICS_PORT=str(ports[0]), **DEBUG)
    stack.orchestrator(**llm_env, PAM_METRICS_PORT=str(ports[1]), **DEBUG)
    gateway = stack.gateway(PAM_METRICS_PORT=str(ports[2]), **DEBUG)
    jwt = token("wanderer")
    async with await connected(gateway.ws_url(f"/ws/wanderer?token={jwt}")) as client:
        frames = await client.chat(f"{QUESTION} [say:{ANSWER}]", "wanderer", context=CONTEXT)
        failed = await client.chat(f"{QUESTION} again [status:500]", "wanderer", context=CONTEXT)
    assert frames[-1]["type"] == "chat_response" and frames[-1]["message"] == ANSWER
    assert failed[-1]["type"] == "error"
    rest = await rest_chat(gateway.http_url(""), "wanderer", jwt, f"{QUESTION} by REST [say:{ANSWER}]")
    assert rest.status_code == 200, rest.text
    async with httpx.AsyncClient() as http:
        privacy = await http.get(
            gateway.http_url("/api/v1/users/me/privacy"), headers={"Authorization": f"Bearer {jwt}"}
        )
        assert privacy.status_code == 200
        await until(lambda: count(db, "messages"), lambda n: n == 5)  # persistence printed what it does with them
        bearer = {"Authorization": f"Bearer {jwt}"}
        exported = await http.get(gateway.http_url("/api/v1/users/me/export"), headers=bearer)
        assert exported.status_code == 200 and QUESTION in exported.text
        erased = await http.delete(gateway.http_url("/api/v1/users/me"), headers=bearer, timeout=70)
        assert erased.status_code == 200 and erased.json()["rows"]["messages"] == 5
    await until(lambda: _printed(stack.processes, "erased a user"), bool)

    forbidden = [
        "quokkaberry",
        "vanmoth",
        "zanthoxyl",
        jwt,
        jwt.rsplit(".", 1)[1],
        llm_env["OPENAI_API_KEY"],
        str(LAT),
        str(LNG),
        CITY,
        REGION,
        "-16.92",  # the shipped client's location on the REST chat (support.wheels_client.context)
        "145.77",
        "Cairns",
    ]
    metrics = [f"http://127.0.0.1:{port}/metrics" for port in ports]
    assert_nothing_leaked(stack.processes, forbidden, metrics)


async def _printed(processes, text: str) -> bool:
    return any(text in line for process in processes for line in list(process.lines))
