"""Every NATS subject and queue group the services use, in one place."""

from __future__ import annotations

CHAT_REQUEST = "pam.chat.request"
"""Gateways publish chats here; orchestrators share them as one queue group."""

ORCHESTRATOR_QUEUE = "orchestrators"

REPLY_ROOT = "pam.reply"
"""Each gateway instance subscribes to ``pam.reply.<gateway_id>.>`` for its answers."""

REPLY_KIND_HEADER = "Pam-Reply"
"""Header on reply messages that are not plain frames: ``end`` or ``progress``."""

REPLY_END = "end"
REPLY_PROGRESS = "progress"

ORCHESTRATOR_SERVICE = "pam-orchestrator"
PERSISTENCE_SERVICE = "pam-persistence"


def reply_prefix(gateway_id: str) -> str:
    """The subject prefix every reply to ``gateway_id`` starts with (ends with a dot)."""
    return f"{REPLY_ROOT}.{gateway_id}."


def reply_subject(gateway_id: str, request_id: str) -> str:
    return f"{REPLY_ROOT}.{gateway_id}.{request_id}"
