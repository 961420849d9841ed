"""Telling the gateway's frames apart without decoding them, and the chat frame every client sends.

A substring test on ``"type":"..."`` is all the load generator does per frame: the type
need not be the first field (resumable frames carry ``event_id`` first), and inside JSON
strings a quote is always escaped, so message text cannot fake it.
"""

from __future__ import annotations

import json

CHAT = json.dumps(
    {
        "type": "chat",
        "message": "hello there",
        "context": {"region": "Queensland", "current_page": "/chat", "session_data": {"recent_intents": []}},
    }
)
PING = '{"type":"ping"}'


def is_chunk(frame: str) -> bool:
    return '"type":"chat_chunk"' in frame


def is_error(frame: str) -> bool:
    return '"type":"error"' in frame


def is_final(frame: str) -> bool:
    """The last frame of an answer: its ``chat_response``, or an ``error``."""
    return '"type":"chat_response"' in frame or is_error(frame)


def is_pong(frame: str) -> bool:
    return '"type":"pong"' in frame
