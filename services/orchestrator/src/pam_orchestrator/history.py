"""Conversation continuity: the earlier turns persistence remembers, asked for over NATS."""

from __future__ import annotations

import logging

import msgspec
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pam_shared import bus
from pam_shared.internal import ChatRequest, HistoryRequest, Turn, history_reply_decoder, history_request_encoder
from pam_shared.subjects import Subjects

log = logging.getLogger("pam.orchestrator.history")

HISTORY_TIMEOUT_SECONDS = 0.5
"""An answer without history beats a late answer: persistence gets this long."""


async def recent_turns(nc: Client, names: Subjects, chat: ChatRequest, limit: int) -> list[Turn]:
    """The last ``limit`` turns before this chat; none when persistence cannot say in time."""
    if limit <= 0:
        return []
    request = HistoryRequest(user_id=chat.user_id, session_id=chat.session_id, before=chat.received_at, limit=limit)
    try:
        reply = await bus.request(nc, names.history, history_request_encoder.encode(request), HISTORY_TIMEOUT_SECONDS)
        return history_reply_decoder.decode(reply.data).turns
    except (NoRespondersError, NatsTimeout, msgspec.DecodeError) as exc:
        log.debug("answering without history: %s", type(exc).__name__)
        return []
