"""Spoken answers: the shipped client's ``POST /api/v1/pam/voice`` gets the audio it plays.

``voiceService.ts`` posts the answer with Nari Dia's cues and knobs, no token, and plays
``new Uint8Array(data.audio)`` as a WAV.  The fake model server plays OpenAI's speech
endpoint; its audio carries the spoken text, so a test can tell what was said.
"""

from __future__ import annotations

import httpx
from support.fake_openai import SPEECH_RATE, speech_wav
from support.tokens import token

SITE = "https://wheelsandwins.com"
USER = "0f1e2d3c-4b5a-4968-8776-655443322110"


def shipped_body(text: str) -> dict:
    """What ``generateVoice`` posts, word for word."""
    return {
        "text": f"[S1] (excited) {text}",
        "temperature": 1.1,
        "cfg_scale": 3,
        "speed_factor": 0.96,
        "max_new_tokens": 2048,
    }


async def speak(
    gateway, body: dict, origin: str | None = SITE, user: str | None = None, path: str = "pam"
) -> httpx.Response:
    headers = {"Origin": origin} if origin else {}
    if user is not None:
        headers["Authorization"] = f"Bearer {token(user)}"
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(gateway.http_url(f"/api/v1/{path}/voice"), json=body, headers=headers)


async def spoken(fake_openai: str) -> list[dict]:
    async with httpx.AsyncClient() as http:
        return (await http.get(fake_openai.removesuffix("/v1") + "/_speech")).json()


async def test_the_shipped_clients_request_gets_the_audio_in_its_shape_and_the_same_answer_is_spoken_once(
    stack, llm_env, fake_openai
):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway(PAM_ALLOWED_ORIGINS=SITE)
    first = await speak(gateway, shipped_body("Your trip to Cairns is planned."))
    again = await speak(gateway, shipped_body("Your trip to Cairns is planned."), path="pam-simple")
    asked = await spoken(fake_openai)
    assert first.status_code == 200, first.text
    body = first.json()
    assert bytes(body["audio"]) == speech_wav("Your trip to Cairns is planned.")  # the cue is not spoken
    assert abs(body["duration"] - len("Your trip to Cairns is planned.") * SPEECH_RATE // 100 / SPEECH_RATE) < 0.01
    assert body["cached"] is False and body["format"] == "wav"
    assert again.status_code == 200 and again.json()["audio"] == body["audio"] and again.json()["cached"] is True
    assert len(asked) == 1
    assert asked[0]["model"] == "gpt-4o-mini-tts" and asked[0]["voice"] == "nova"
    assert asked[0]["speed"] == 0.96 and asked[0]["response_format"] == "wav"


async def test_a_voice_name_of_openais_is_used_and_another_is_ignored(stack, llm_env, fake_openai):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway(PAM_ALLOWED_ORIGINS=SITE)
    await speak(gateway, {"text": "Hello there.", "voice": "Onyx"})
    await speak(gateway, {"text": "Hello again.", "voice": "pam-australian"})
    assert [(s["input"], s["voice"]) for s in await spoken(fake_openai)] == [
        ("Hello there.", "onyx"),
        ("Hello again.", "nova"),
    ]


async def test_only_allowed_origins_or_a_token_may_ask(stack, llm_env):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway(PAM_ALLOWED_ORIGINS=SITE)
    elsewhere = await speak(gateway, shipped_body("hi"), origin="https://copycat.example")
    no_origin = await speak(gateway, shipped_body("hi"), origin=None)
    with_token = await speak(gateway, shipped_body("hi"), origin=None, user=USER)
    async with httpx.AsyncClient() as http:
        bad_token = await http.post(
            gateway.http_url("/api/v1/pam/voice"),
            json=shipped_body("hi"),
            headers={"Origin": SITE, "Authorization": "Bearer not-a-token"},
        )
    assert elsewhere.status_code == 403 and elsewhere.json()["error_code"] == "origin_forbidden"
    assert no_origin.status_code == 403
    assert with_token.status_code == 200 and with_token.json()["audio"]
    assert bad_token.status_code == 401


async def test_each_client_address_has_a_budget_and_each_signed_in_user_another(stack, llm_env):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway(
        PAM_ALLOWED_ORIGINS=SITE, PAM_VOICE_PER_IP_PER_MINUTE="3", PAM_VOICE_PER_USER_PER_MINUTE="1"
    )
    as_user = [await speak(gateway, shipped_body(f"user {n}"), user=USER) for n in range(2)]
    anonymous = [await speak(gateway, shipped_body(f"anyone {n}")) for n in range(2)]
    assert [r.status_code for r in as_user] == [200, 429]  # the user's budget
    assert [r.status_code for r in anonymous] == [200, 429]  # the address's: 3 in all
    assert int(anonymous[1].headers["Retry-After"]) >= 1 and anonymous[1].json()["error_code"] == "rate_limited"


async def test_without_a_model_key_the_error_says_so(stack):
    stack.orchestrator()  # no OPENAI_API_KEY
    gateway = stack.gateway(PAM_ALLOWED_ORIGINS=SITE)
    reply = await speak(gateway, shipped_body("hello"))
    assert reply.status_code == 503
    assert reply.json()["error_code"] == "voice_unavailable" and "OPENAI_API_KEY" in reply.json()["message"]


async def test_long_text_is_spoken_up_to_the_last_whole_sentence_within_the_limit(stack, llm_env, fake_openai):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway(PAM_ALLOWED_ORIGINS=SITE, PAM_VOICE_MAX_CHARS="40")
    reply = await speak(gateway, shipped_body("Fuel is cheap in Mareeba. Camp at the lake tonight. Then drive on."))
    assert reply.status_code == 200 and reply.json()["truncated"] is True
    assert [s["input"] for s in await spoken(fake_openai)] == ["Fuel is cheap in Mareeba."]


async def test_audio_too_large_for_one_nats_message_is_refused_clearly(stack, llm_env):
    stack.orchestrator(**llm_env)
    gateway = stack.gateway(PAM_ALLOWED_ORIGINS=SITE, PAM_VOICE_MAX_CHARS="4096")
    reply = await speak(gateway, {"text": "word " * 500})  # 2,500 characters: 1.2 MB of WAV
    assert reply.status_code == 413 and reply.json()["error_code"] == "voice_too_long"
