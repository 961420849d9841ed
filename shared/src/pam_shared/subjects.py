"""Every NATS subject, queue group, stream and service name, in one place.

All of them live under a namespace (``PAM_NATS_NAMESPACE``, default ``pam``), so
several stacks (or test runs) can share one NATS server without seeing each other.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

REPLY_KIND_HEADER = "Pam-Reply"
"""Header on reply messages that are not plain frames: ``end`` or ``progress``."""

REPLY_END = "end"
REPLY_PROGRESS = "progress"

EVENT_ID_HEADER = "Pam-Event-Id"
"""The frame's event id (its sequence in the frames stream); gateways write it into the frame."""

CHAT_ID_HEADER = "Pam-Chat-Id"
"""On a user-subject copy of an answer's frame: the chat it answers."""

LEADING_CHUNK_HEADER = "Pam-Leading-Chunk"
"""On a reply carrying a lasting frame: the payload is the answer's last ``chat_chunk``, a
newline, then that frame (one message instead of two; JSON frames hold no raw newline)."""

TURN_HEADER = "Pam-Turn"
"""On an answer's end: the revision of the hold it gave up (``ChatRequest.turn``)."""

RESTART_HEADER = "Pam-Restart"
"""On a chat request: an earlier worker streamed part of this answer, then died."""

_SAFE_TOKEN = re.compile(r"[-_a-zA-Z0-9]{1,64}")


def user_token(user_id: str) -> str:
    """A subject/key-safe token for a user id: UUIDs as they are, anything else hashed."""
    return user_id if _SAFE_TOKEN.fullmatch(user_id) else hashlib.sha256(user_id.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Subjects:
    namespace: str = "pam"

    @property
    def chat_request(self) -> str:
        """Gateways publish chats here; orchestrators share them as one queue group."""
        return f"{self.namespace}.chat.request"

    @property
    def orchestrator_queue(self) -> str:
        return f"{self.namespace}-orchestrators"

    @property
    def chat_cancel(self) -> str:
        """Request-reply, queue group: stop a user's answer or queued chat, wherever it runs."""
        return f"{self.namespace}.chat.cancel"

    def cancel_at(self, instance: str) -> str:
        """Request-reply: stop an answer of this orchestrator instance (``chat_cancel`` forwards here)."""
        return f"{self.namespace}.orchestrator.{instance}.cancel"

    def holding_at(self, instance: str) -> str:
        """Request-reply: does a chat this orchestrator instance holds the turn for still have it (``holds``)?"""
        return f"{self.namespace}.orchestrator.{instance}.holding"

    @property
    def answering_bucket(self) -> str:
        """The key-value bucket naming each user's answer in progress and queued chats (``holds``)."""
        return f"{self.namespace.upper().replace('-', '_')}_ANSWERING"

    def released(self, user_id: str) -> str:
        """An orchestrator gave up a user's hold (the payload: its answer's id; empty from an older
        version): chats waiting for it look again."""
        return f"{self.namespace}.released.{user_token(user_id)}"

    def reply_prefix(self, gateway_id: str) -> str:
        """Each gateway subscribes to ``<prefix>>`` for the answers to its requests."""
        return f"{self.namespace}.reply.{gateway_id}."

    def user(self, user_id: str) -> str:
        """Publish a server frame here to reach every socket ``user_id`` has open, on any gateway."""
        return f"{self.namespace}.user.{user_token(user_id)}"

    @property
    def user_wildcard(self) -> str:
        return f"{self.namespace}.user.*"

    def frames(self, user_id: str) -> str:
        """Where a user's resumable frames are kept for the resume window."""
        return f"{self.namespace}.frames.{user_token(user_id)}"

    @property
    def frames_wildcard(self) -> str:
        return f"{self.namespace}.frames.*"

    @property
    def frames_stream(self) -> str:
        return f"{self.namespace.upper().replace('-', '_')}_FRAMES"

    @property
    def timers_stream(self) -> str:
        """Timers and alarms as message schedules (``pam_shared.timers``)."""
        return f"{self.namespace.upper().replace('-', '_')}_TIMERS"

    @property
    def rate_bucket(self) -> str:
        """The key-value bucket where gateways share per-user message counts."""
        return f"{self.namespace.upper().replace('-', '_')}_RATES"

    @property
    def idempotency_bucket(self) -> str:
        """The key-value bucket mapping a client's re-sent chat to the chat already answering it."""
        return f"{self.namespace.upper().replace('-', '_')}_CHATS"

    @property
    def turns_bucket(self) -> str:
        """The key-value bucket where orchestrators keep each user's recent turns (``pam_orchestrator.turns``)."""
        return f"{self.namespace.upper().replace('-', '_')}_TURNS"

    @property
    def budget_bucket(self) -> str:
        """The key-value bucket of each user's tokens spent per day and month (``pam_shared.budget``);
        keys start with the user's token, so one user's entries go by prefix."""
        return f"{self.namespace.upper().replace('-', '_')}_BUDGETS"

    @property
    def events_stream(self) -> str:
        """The JetStream stream that carries everything persistence writes."""
        return f"{self.namespace.upper().replace('-', '_')}_EVENTS"

    @property
    def events_wildcard(self) -> str:
        return f"{self.namespace}.events.>"

    def event(self, kind: str, user_id: str) -> str:
        """Where an event of ``kind`` about ``user_id`` is journaled: the user's token last, so
        erasure purges one user's events by subject (``events_of``)."""
        return f"{self.namespace}.events.{kind}.{user_token(user_id)}"

    def events_of(self, user_id: str) -> str:
        return f"{self.namespace}.events.*.{user_token(user_id)}"

    @property
    def history(self) -> str:
        """Request-reply: the last turns of a user's conversation, answered by persistence."""
        return f"{self.namespace}.persistence.history"

    @property
    def conversation_list(self) -> str:
        """Request-reply: a user's conversations, newest first, answered by persistence."""
        return f"{self.namespace}.persistence.conversations"

    @property
    def conversation_messages(self) -> str:
        """Request-reply: the messages of one of a user's conversations."""
        return f"{self.namespace}.persistence.messages"

    @property
    def analytics_summary(self) -> str:
        """Request-reply: messages per day, intents and latencies over a window."""
        return f"{self.namespace}.persistence.analytics"

    @property
    def privacy(self) -> str:
        """Request-reply: read or change a user's privacy settings, answered by persistence."""
        return f"{self.namespace}.persistence.privacy"

    @property
    def privacy_bucket(self) -> str:
        """The key-value bucket where persistence mirrors each user's privacy settings, keyed by
        user token, so every gateway knows them without asking the database per chat."""
        return f"{self.namespace.upper().replace('-', '_')}_PRIVACY"

    @property
    def export(self) -> str:
        """Request-reply: one page of everything stored about a user, answered by persistence."""
        return f"{self.namespace}.persistence.export"

    @property
    def delete_conversation(self) -> str:
        """Request-reply: erase one of a user's conversations, answered by persistence."""
        return f"{self.namespace}.persistence.delete_conversation"

    @property
    def erase(self) -> str:
        """Request-reply: erase a user everywhere (the gateway for the user, or an operator's
        pipeline with a service token), answered by persistence."""
        return f"{self.namespace}.privacy.erase"

    @property
    def erasing(self) -> str:
        """Request, many replies: every gateway and orchestrator stops what it does for a user
        being erased (closes sockets, cancels answers) and says so."""
        return f"{self.namespace}.control.erasing"

    @property
    def persistence_consumer(self) -> str:
        """The durable pull consumer on the events stream that every persistence instance shares."""
        return "persistence"

    @property
    def speech(self) -> str:
        """Request-reply: an answer's text to speak, answered with the audio by an orchestrator."""
        return f"{self.namespace}.speech"

    @property
    def speech_bucket(self) -> str:
        """The key-value bucket where orchestrators keep audio already made (identical text and voice)."""
        return f"{self.namespace.upper().replace('-', '_')}_SPEECH"

    @property
    def alerts(self) -> str:
        """Request-reply: any service raises a proactive alert here (``pam_shared.alerts``);
        orchestrators take each one as a queue group."""
        return f"{self.namespace}.alerts"

    @property
    def debug_control(self) -> str:
        """Every service listens here to switch debug logging per user or session at run time."""
        return f"{self.namespace}.control.debug"

    @property
    def gateway_service(self) -> str:
        return f"{self.namespace}-gateway"

    @property
    def orchestrator_service(self) -> str:
        """The ``nats.micro`` service name orchestrators register under."""
        return f"{self.namespace}-orchestrator"

    @property
    def persistence_service(self) -> str:
        return f"{self.namespace}-persistence"
