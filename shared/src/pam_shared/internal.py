"""Messages the services exchange over NATS; clients never see these."""

from __future__ import annotations

from typing import Literal

import msgspec

from pam_shared.privacy import Privacy
from pam_shared.protocol import ChatContext, OnBusy


class ChatRequest(msgspec.Struct):
    """A validated chat, handed from a gateway to whichever orchestrator takes it."""

    chat_id: str
    session_id: str
    user_id: str
    demo: bool
    message: str
    context: ChatContext
    received_at: float
    message_id: str | None = None
    on_busy: OnBusy | None = None
    regenerate: str | None = None
    """Answer again the turn of this earlier answer (its id, or its chat's client id); ``message`` is empty."""
    edit_of: str | None = None
    """This message replaces that earlier user message (its id, or its client id)."""
    privacy: Privacy = Privacy()
    """What the user lets us keep of this chat, as the gateway knew it when it accepted it."""
    turn: int | None = None
    """The revision of the user's last answer's hold, as this gateway heard (``Pam-Turn``; an
    older orchestrator's free entry): a hint that lets the orchestrator take the turn in one
    write; stale or None costs a read."""


chat_request_encoder = msgspec.json.Encoder()
chat_request_decoder = msgspec.json.Decoder(ChatRequest)


class Turn(msgspec.Struct):
    """One earlier message of a conversation, as the LLM sees it."""

    role: str
    content: str

    @property
    def prompt(self) -> dict[str, str]:
        """As a message of the model's prompt."""
        return {"role": self.role, "content": self.content}


class HistoryRequest(msgspec.Struct):
    """Orchestrator -> persistence: the last ``limit`` turns of this user's conversation
    that were created before ``before`` (so the message being answered is not repeated)."""

    user_id: str
    session_id: str
    before: float
    limit: int = 10


class HistoryReply(msgspec.Struct):
    conversation_id: str | None
    turns: list[Turn] = []


history_request_encoder = msgspec.json.Encoder()
history_request_decoder = msgspec.json.Decoder(HistoryRequest)
history_reply_decoder = msgspec.json.Decoder(HistoryReply)


class CancelRequest(msgspec.Struct):
    """Gateway -> orchestrators (``chat_cancel``): stop this user's answer or queued chat that
    ``message_id`` names (the client's id of the chat, or the answer's own)."""

    user_id: str
    message_id: str


CancelStatus = Literal["stopped", "dequeued", "not_found"]


class CancelReply(msgspec.Struct):
    status: CancelStatus


cancel_encoder = msgspec.json.Encoder()
cancel_request_decoder = msgspec.json.Decoder(CancelRequest)
cancel_reply_decoder = msgspec.json.Decoder(CancelReply)


class HoldQuery(msgspec.Struct):
    """Orchestrator -> the orchestrator a user's hold names (``holding_at``), from a chat that found
    it: does the answer ``answer_id`` still have its turn there?"""

    user_id: str
    answer_id: str
    waiting: bool = False
    """The chat will wait for it: announce its release (an older version ignores this)."""


class HoldReply(msgspec.Struct):
    answering: bool


hold_encoder = msgspec.json.Encoder()
hold_query_decoder = msgspec.json.Decoder(HoldQuery)
hold_reply_decoder = msgspec.json.Decoder(HoldReply)


class SpeechRequest(msgspec.Struct):
    """Gateway -> orchestrator: speak ``text`` (already bounded and cleaned) in ``voice``
    (None: the configured one) at ``speed`` (OpenAI's 0.25-4)."""

    text: str
    voice: str | None = None
    speed: float = 1.0
    user_id: str = ""
    """Whose answer it is ("": a request without a token): the cache keeps each user's audio apart."""


SPEECH_ERROR_HEADER = "Pam-Error"
"""On a speech reply that carries no audio: the error code."""
SPEECH_DURATION_HEADER = "Pam-Duration"
"""On a speech reply: the audio's length in seconds."""
SPEECH_CACHED_HEADER = "Pam-Cached"
"""On a speech reply: ``1`` when the audio was made earlier for the same text and voice."""

speech_request_encoder = msgspec.json.Encoder()
speech_request_decoder = msgspec.json.Decoder(SpeechRequest)
