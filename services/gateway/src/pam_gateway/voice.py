"""Spoken answers for the shipped client: ``POST /api/v1/pam/voice`` (and ``pam-simple``).

``voiceService.ts`` posts every answer's text here without a token, so a request is taken
only from a page whose ``Origin`` is in ``PAM_ALLOWED_ORIGINS`` (without an ``Origin``, only
with a valid token), within a per-client-IP budget and, when it carries a token, a per-user
one (both shared by every gateway).  The speech itself is made behind NATS by an
orchestrator (``pam_orchestrator.speech``); the gateway never calls OpenAI.
"""

from __future__ import annotations

import re

import msgspec
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pam_shared import bus
from pam_shared.auth import AuthError, Identity, verify_token
from pam_shared.errors import ERRORS, ErrorCode, error_body
from pam_shared.internal import (
    SPEECH_CACHED_HEADER,
    SPEECH_DURATION_HEADER,
    SPEECH_ERROR_HEADER,
    SpeechRequest,
    speech_request_encoder,
)
from pam_shared.protocol import encoder
from pam_shared.settings import SPEECH_VOICES, GatewaySettings
from pam_shared.wheels import VoiceResponse, voice_request_decoder
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pam_gateway import metrics, origins
from pam_gateway.quota import UserQuota

DIA_CUES = re.compile(r"\[S\d+\]\s*(\([^()]{0,60}\)\s*)?")
"""Nari Dia's speaker tags and their emotion cue (``[S1] (excited) ``): not words to speak."""
SENTENCE_END = re.compile(r"[.!?…](\s|$)")


class Voice:
    def __init__(self, nc: Client, settings: GatewaySettings, per_ip: UserQuota, per_user: UserQuota) -> None:
        self.nc = nc
        self.settings = settings
        self.per_ip = per_ip
        self.per_user = per_user

    async def speak(self, request: Request) -> Response:
        try:
            identity = await self._identity(request)
            body = voice_request_decoder.decode(await request.body())
        except AuthError as exc:
            return _refusal(exc.code)
        except msgspec.DecodeError as exc:
            return _refusal("voice_invalid", str(exc))
        if not self._origin_ok(request, identity):
            return _refusal("origin_forbidden")
        refused = await self._within_budgets(request, identity)
        if refused is not None:
            return refused
        text, truncated = bounded(DIA_CUES.sub("", body.text).strip(), self.settings.speech.max_chars)
        if not text:
            return _refusal("voice_invalid", "nothing to speak once the voice cues are removed")
        voice = body.voice.lower() if body.voice and body.voice.lower() in SPEECH_VOICES else None
        speed = min(4.0, max(0.25, body.speed_factor or 1.0))
        owner = identity.user_id if identity is not None and not identity.demo else ""
        return await self._spoken(SpeechRequest(text=text, voice=voice, speed=speed, user_id=owner), truncated)

    async def _identity(self, request: Request) -> Identity | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return await verify_token(token.strip(), self.settings.auth)

    def _origin_ok(self, request: Request, identity: Identity | None) -> bool:
        origin = request.headers.get("origin")
        if origin is None:
            return identity is not None
        return origins.allowed(origin, self.settings.allowed_origins, request.headers.get("host"))

    async def _within_budgets(self, request: Request, identity: Identity | None) -> Response | None:
        client_ip = request.client.host if request.client else "unknown"
        for quota, key, kind in (
            (self.per_ip, f"voice-ip@{client_ip}", "voice_ip"),
            (self.per_user, f"voice@{identity.user_id}" if identity else None, "voice_user"),
        ):
            retry_after = await quota.take(key) if key else 0.0
            if retry_after:
                metrics.rate_limited.labels(kind).inc()
                return _refusal("rate_limited", headers={"Retry-After": str(int(retry_after) + 1)})
        return None

    async def _spoken(self, wanted: SpeechRequest, truncated: bool) -> Response:
        names, timeout = self.settings.subjects, self.settings.speech.timeout_seconds
        try:
            reply = await bus.request(self.nc, names.speech, speech_request_encoder.encode(wanted), timeout)
        except NoRespondersError:
            return _refusal("orchestrator_unavailable")
        except (NatsTimeout, TimeoutError):
            return _refusal("timeout")
        headers = reply.headers or {}
        code = headers.get(SPEECH_ERROR_HEADER)
        if code is not None:
            return _refusal(code if code in ERRORS else "voice_failed")
        body = VoiceResponse(
            audio=list(reply.data),
            duration=float(headers.get(SPEECH_DURATION_HEADER, "0")),
            cached=headers.get(SPEECH_CACHED_HEADER) == "1",
            truncated=truncated,
        )
        return Response(encoder.encode(body), media_type="application/json")


def bounded(text: str, limit: int) -> tuple[str, bool]:
    """At most ``limit`` characters, cut after the last whole sentence that fits (or a word)."""
    if len(text) <= limit:
        return text, False
    head = text[:limit]
    ends = [m.end() for m in SENTENCE_END.finditer(head)]
    cut = ends[-1] if ends else (head.rfind(" ") if " " in head else limit)
    return head[:cut].strip(), True


def _refusal(code: ErrorCode, detail: str | None = None, headers: dict[str, str] | None = None) -> Response:
    """The error body of ``code`` (its HTTP status from the one error table)."""
    return JSONResponse(error_body(code, detail), status_code=ERRORS[code].status, headers=headers)
