"""Messages the services exchange over NATS; clients never see these."""

from __future__ import annotations

import msgspec

from pam_shared.protocol import ChatContext


class ChatRequest(msgspec.Struct):
    """A validated chat, handed from a gateway to whichever orchestrator takes it."""

    request_id: str
    session_id: str
    user_id: str
    demo: bool
    message: str
    context: ChatContext
    received_at: float
    message_id: str | None = None


chat_request_encoder = msgspec.json.Encoder()
chat_request_decoder = msgspec.json.Decoder(ChatRequest)
