"""A chat sent twice is answered once: the shipped client re-sends a slow chat over REST.

Each chat of a signed-in user claims a key (the client's message id, else its text) in a
JetStream key-value bucket shared by every gateway, for ``PAM_IDEMPOTENCY_WINDOW_SECONDS``.
A later chat with the same key gets the chat id already answering it, and waits for that
answer instead of starting a second, billed one.
"""

from __future__ import annotations

import hashlib
import logging

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pam_shared import jetstream
from pam_shared.subjects import user_token

log = logging.getLogger("pam.gateway.idempotency")


def chat_key(user_id: str, message_id: str | None, text: str) -> str:
    """The key of a chat: its message id when the client sent one, else its text; the user's
    token first, so an erasure purges the user's keys alone."""
    what = f"id\0{message_id}" if message_id else f"text\0{text.strip()}"
    digest = hashlib.sha256(f"{user_id}\0{what}".encode()).hexdigest()[:40]
    return f"{user_token(user_id)}.{digest}"


class ChatKeys:
    def __init__(self, js: JetStreamContext, bucket: str, window_seconds: float) -> None:
        self.js = js
        self.bucket = bucket
        self.window = window_seconds
        self._kv: KeyValue | None = None

    async def start(self, replicas: int = 1) -> None:
        config = KeyValueConfig(bucket=self.bucket, ttl=self.window, history=1, replicas=replicas)
        self._kv = await jetstream.ensure_bucket(self.js, config)

    async def claim(self, key: str, chat_id: str) -> str | None:
        """Record ``chat_id`` under ``key``; returns the chat id that had it already, if any.
        JetStream trouble costs the de-duplication, never the chat."""
        assert self._kv is not None
        try:
            await self._kv.create(key, chat_id.encode())
            return None
        except KeyWrongLastSequenceError:
            entry = await self._kv.get(key)
            return (entry.value or b"").decode() or None
        except Exception as exc:
            log.warning("chat keys unavailable, not de-duplicating: %s", exc)
            return None
