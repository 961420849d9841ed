"""Spoken answers: text to audio with OpenAI's speech API, cached, on ``<ns>.speech``.

The gateway never calls OpenAI; it asks here (a queue group of every orchestrator).  The
reply's body is the audio itself (WAV, which the shipped client plays), its length and
whether it was cached in headers, or, with no body, an error code in ``Pam-Error``.
Identical text in the same voice at the same speed is spoken once per
``PAM_VOICE_CACHE_SECONDS``: the audio is kept in a JetStream key-value bucket every
orchestrator shares.  Audio that would not fit one NATS message is refused (``voice_too_long``).
"""

from __future__ import annotations

import hashlib
import logging
import struct
from typing import Final

import msgspec
import openai
from nats.aio.client import Client
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from nats.micro.request import Request
from pam_shared import jetstream, logs
from pam_shared.internal import (
    SPEECH_CACHED_HEADER,
    SPEECH_DURATION_HEADER,
    SPEECH_ERROR_HEADER,
    SpeechRequest,
    speech_request_decoder,
)
from pam_shared.settings import SpeechSettings
from pam_shared.subjects import Subjects, user_token

log = logging.getLogger("pam.orchestrator.speech")

FORMAT: Final = "wav"
"""What the shipped client plays (it wraps the bytes in an ``audio/wav`` blob)."""
HEADROOM_BYTES = 4096
"""Room left in a NATS message for its subject and headers."""


class Speech:
    def __init__(self, nc: Client, names: Subjects, settings: SpeechSettings) -> None:
        self.nc = nc
        self.names = names
        self.settings = settings
        self.client = (
            openai.AsyncOpenAI(
                api_key=settings.api_key, base_url=settings.base_url, timeout=settings.timeout_seconds, max_retries=1
            )
            if settings.api_key
            else None
        )
        self.cache: KeyValue | None = None

    async def start(self, replicas: int) -> None:
        config = KeyValueConfig(
            bucket=self.names.speech_bucket,
            ttl=self.settings.cache_seconds,
            max_bytes=self.settings.cache_bytes,
            max_value_size=self.nc.max_payload - HEADROOM_BYTES,
            history=1,
            replicas=replicas,
        )
        self.cache = await jetstream.ensure_bucket(self.nc.jetstream(), config)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    async def on_request(self, request: Request) -> None:
        try:
            wanted = speech_request_decoder.decode(request.data)
        except msgspec.DecodeError:
            await _fail(request, "voice_invalid")
            return
        if self.client is None:
            await _fail(request, "voice_unavailable")
            return
        key = _key(wanted, self.settings.voice, self.settings.model)
        audio, cached = await self._cached(key), True
        if audio is None:
            audio, cached = await self._speak(wanted), False
            if audio is None:
                await _fail(request, "voice_failed")
                return
            if len(audio) > self.nc.max_payload - HEADROOM_BYTES:
                await _fail(request, "voice_too_long")
                return
            await self._keep(key, audio)
        headers = {SPEECH_DURATION_HEADER: f"{_duration(audio):.3f}", SPEECH_CACHED_HEADER: "1" if cached else "0"}
        await request.respond(audio, headers=headers)

    async def _speak(self, wanted: SpeechRequest) -> bytes | None:
        assert self.client is not None
        try:
            response = await self.client.audio.speech.create(
                model=self.settings.model,
                voice=wanted.voice or self.settings.voice,
                input=wanted.text,
                response_format=FORMAT,
                speed=wanted.speed,
            )
            return response.content
        except openai.OpenAIError as exc:
            log.warning("speech failed: %s", type(exc).__name__, extra={"marker": logs.ERROR})
            return None

    async def _cached(self, key: str) -> bytes | None:
        assert self.cache is not None
        try:
            return (await self.cache.get(key)).value
        except KeyNotFoundError:
            return None
        except Exception as exc:  # the cache is an economy, never a reason to be silent
            log.warning("speech cache unavailable: %s", exc)
            return None

    async def _keep(self, key: str, audio: bytes) -> None:
        assert self.cache is not None
        try:
            await self.cache.put(key, audio)
        except Exception as exc:
            log.warning("speech not cached: %s", exc)


def _key(wanted: SpeechRequest, default_voice: str, model: str) -> str:
    """The user's token first (an erasure purges their audio alone), then what was spoken how."""
    spoken = f"{model}\n{wanted.voice or default_voice}\n{wanted.speed:.2f}\n{wanted.text}"
    owner = user_token(wanted.user_id) if wanted.user_id else "anyone"
    return f"{owner}.{hashlib.sha256(spoken.encode()).hexdigest()}"


def _duration(audio: bytes) -> float:
    """Seconds of a PCM WAV: its data after the 44-byte header, at its byte rate (0 if not one)."""
    if len(audio) < 44 or audio[:4] != b"RIFF" or audio[8:12] != b"WAVE":
        return 0.0
    byte_rate = struct.unpack_from("<I", audio, 28)[0]
    return (len(audio) - 44) / byte_rate if byte_rate else 0.0


async def _fail(request: Request, code: str) -> None:
    await request.respond(b"", headers={SPEECH_ERROR_HEADER: code})
