"""Where a chat goes once a socket or a REST call has accepted it: one path for both.

Admission first (the per-user message limit, then the user's token budget), then the journal
(the user's message, for persistence), then the relay to the orchestrators; the keys that
spot a re-sent chat ride along.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from nats.errors import Error as NatsError
from pam_shared import logs, tracing
from pam_shared.auth import Identity
from pam_shared.errors import ErrorCode
from pam_shared.events import UserMessage
from pam_shared.internal import (
    CancelRequest,
    CancelStatus,
    ChatRequest,
    cancel_encoder,
    cancel_reply_decoder,
    chat_request_encoder,
)
from pam_shared.journal import Journal
from pam_shared.protocol import Chat

from pam_gateway import metrics
from pam_gateway.consent import PrivacyBook
from pam_gateway.idempotency import ChatKeys, chat_key
from pam_gateway.quota import UserQuota
from pam_gateway.relay import Recipient, Relay
from pam_gateway.spent import SpentBook

log = logging.getLogger("pam.gateway.chats")

CANCEL_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class Refused:
    """A chat turned away before it reached the model: the code, its details, seconds to wait."""

    code: ErrorCode
    details: dict[str, object]
    retry_after: float


@dataclass(frozen=True, slots=True)
class Branch:
    """A chat that answers an earlier turn again (``regenerate``: that answer's id) or replaces
    an earlier user message (``edit_of``: its id), making a sibling instead of overwriting."""

    regenerate: str | None = None
    edit_of: str | None = None


@dataclass(frozen=True, slots=True)
class ChatPath:
    """Where a chat goes once accepted, from a socket or over REST: the per-user limits, the
    keys that spot a re-sent chat, the user's privacy settings, the journal, the relay."""

    quota: UserQuota
    spent: SpentBook
    keys: ChatKeys
    book: PrivacyBook
    journal: Journal
    relay: Relay

    async def admit(self, identity: Identity, client_ip: str) -> Refused | None:
        """Why this chat may not go on now, if it may not: the message limit, the token budget.
        Demo identities are fresh per socket, so their chats count against the client's address
        (and have no budget)."""
        if self.book.erasing(identity.user_id):
            return Refused("erasing", {}, 1.0)
        retry_after = await self.quota.take(f"demo@{client_ip}" if identity.demo else identity.user_id)
        if retry_after:
            metrics.rate_limited.labels("user").inc()
            return Refused("rate_limited", {"retry_after": round(retry_after, 2)}, retry_after)
        spent = None if identity.demo else self.spent.spent(identity.user_id)
        if spent is not None:
            metrics.rate_limited.labels("budget").inc()
            return Refused("budget_exceeded", spent.details, spent.retry_after_seconds)
        return None

    async def resent(self, identity: Identity, client_message_id: str | None, text: str, chat_id: str) -> str | None:
        """For clients that re-send over REST (the WHEELS WINS one): the chat already answering
        this one, if it is a re-send; else ``chat_id`` is claimed for it, so its re-send finds it."""
        if identity.demo:
            return None
        return await self.keys.claim(chat_key(identity.user_id, client_message_id, text), chat_id)

    async def submit(
        self,
        identity: Identity,
        session_id: str,
        chat: Chat,
        recipient: Recipient,
        chat_id: str | None = None,
        branch: Branch | None = None,
    ) -> str:
        """Hand a validated chat to the orchestrators, recorded for persistence (unless the user
        keeps their conversations to themselves; a regenerate has no message of its own to
        record); returns its chat id."""
        branch = branch or Branch()
        request = ChatRequest(
            chat_id=chat_id or uuid.uuid4().hex,
            session_id=session_id,
            user_id=identity.user_id,
            demo=identity.demo,
            message=chat.message,
            context=chat.context,
            received_at=time.time(),
            message_id=chat.message_id,
            on_busy=chat.on_busy,
            regenerate=branch.regenerate,
            edit_of=branch.edit_of,
            privacy=self.book.of(identity.user_id),
            turn=self.relay.turns.take(identity.user_id),
        )
        traceparent = tracing.new_traceparent()
        extra = {"session_id": session_id, "user_id": identity.user_id, "trace_id": tracing.trace_id_of(traceparent)}
        log.debug("chat accepted", extra={**extra, "marker": logs.INCOMING})
        if not identity.demo and request.regenerate is None and request.privacy.store_conversations:
            event = _user_message(request, traceparent)
            self.journal.record(event, {tracing.TRACEPARENT: tracing.child_traceparent(traceparent)})
        encoded = chat_request_encoder.encode(request)
        await self.relay.send(recipient, request.chat_id, encoded, chat.message_id, traceparent)
        return request.chat_id

    async def cancel(self, identity: Identity, message_id: str) -> CancelStatus | None:
        """Stop the user's answer (or queued chat) that ``message_id`` names, on whichever
        orchestrator runs it; None when no orchestrator answered."""
        request = cancel_encoder.encode(CancelRequest(identity.user_id, message_id))
        try:
            reply = await self.relay.nc.request(self.relay.names.chat_cancel, request, timeout=CANCEL_TIMEOUT_SECONDS)
        except (NatsError, TimeoutError):
            return None
        return cancel_reply_decoder.decode(reply.data).status


def _user_message(request: ChatRequest, traceparent: str) -> UserMessage:
    return UserMessage(
        event_id=request.chat_id,  # the answer names it as its parent
        session_id=request.session_id,
        user_id=request.user_id,
        content=request.message,
        created_at=request.received_at,
        client_message_id=request.message_id,
        region=request.context.region,
        current_page=request.context.current_page,
        trace_id=tracing.trace_id_of(traceparent),
        edit_of=request.edit_of,
    )
