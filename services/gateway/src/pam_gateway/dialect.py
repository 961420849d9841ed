"""How one kind of client speaks: reading its frames, and writing ours in its shape.

Everything behind the socket (session, relay, limits, resume, persistence) speaks the
seed's protocol (``pam_shared.protocol``).  A dialect translates at the edge, per socket,
so neither dialect's quirks reach the other or anything underneath.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pam_shared.protocol import Chat, ClientFrame, client_decoder

Put = Callable[[str], None]
"""The socket's send queue (``Outbox.put``)."""


class Dialect(Protocol):
    refuse_at_handshake: bool
    """Refuse a bad token before accepting the socket (the client then backs off), rather than
    accepting it and closing with an error frame and 4401."""
    resends_over_rest: bool
    """The client re-sends a chat it gave up waiting for over REST: record each chat's key
    (``idempotency``), so the re-send gets this answer instead of a second one."""

    def read(self, text: str) -> ClientFrame | None:
        """The seed frame a client frame means, or None for one accepted and ignored.
        Raises ``msgspec.DecodeError`` for a frame it cannot read."""
        ...

    def write(self, put: Put, frame: bytes) -> None:
        """Hand ``put`` what this client gets for one seed-encoded server frame (or nothing)."""
        ...

    def client_message_id(self, chat: Chat) -> str | None:
        """The message id the client gave this chat (None when the dialect made one up)."""
        ...


class SeedDialect:
    """The seed's own protocol: frames pass as they are."""

    refuse_at_handshake = False
    resends_over_rest = False

    def read(self, text: str) -> ClientFrame | None:
        frame: ClientFrame = client_decoder.decode(text)
        return frame

    def write(self, put: Put, frame: bytes) -> None:
        put(frame.decode())

    def client_message_id(self, chat: Chat) -> str | None:
        return chat.message_id


SEED = SeedDialect()
