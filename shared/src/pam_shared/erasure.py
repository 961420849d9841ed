"""Erasing a user: the messages it takes, and every place in NATS their data lives.

Persistence runs an erasure (``pam_persistence.erasure``): it has every gateway and orchestrator
stop what they do for the user (``Erasing``), fences and deletes the user's rows, purges what
``places`` names, and tells them it is done.  Every subject and key that holds a user's data
starts or ends with their token (``subjects.user_token``), so each purge touches that user
alone, and a purge leaves no marker behind (a key-value delete would leave one naming the key).
"""

from __future__ import annotations

import msgspec
from nats.js import JetStreamContext

from pam_shared.subjects import Subjects, user_token

OPERATOR_ROLES = frozenset({"admin", "service_role"})
"""Tokens that may erase any user (an operator's account-deletion pipeline)."""


class Erasing(msgspec.Struct):
    """Persistence -> every gateway and orchestrator: stop serving ``user_id`` (close sockets,
    cancel answers, refuse chats) until ``done``; each replies with its instance id."""

    user_id: str
    done: bool = False


class EraseRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Erase a user: ``token`` is theirs, or an operator's naming ``user_id``."""

    token: str
    user_id: str | None = None


class Erased(msgspec.Struct):
    """What an erasure removed: rows per PostgreSQL table, messages per JetStream stream."""

    rows: dict[str, int]
    messages: dict[str, int]
    services: int
    """The gateways and orchestrators that stopped serving the user before anything was removed."""


class ConversationErase(msgspec.Struct):
    user_id: str
    conversation_id: str


class ConversationErased(msgspec.Struct):
    found: bool
    messages: int = 0


erasure_encoder = msgspec.json.Encoder()
erasing_decoder = msgspec.json.Decoder(Erasing)
erase_request_decoder = msgspec.json.Decoder(EraseRequest)
erased_decoder = msgspec.json.Decoder(Erased)
conversation_erase_decoder = msgspec.json.Decoder(ConversationErase)
conversation_erased_decoder = msgspec.json.Decoder(ConversationErased)


async def places(js: JetStreamContext, names: Subjects, user_id: str) -> list[tuple[str, str]]:
    """Every (stream, subject filter) that can hold ``user_id``'s data: the events journal, kept
    frames, timers, and each key-value bucket of the namespace (keys start with the token)."""
    token = user_token(user_id)
    found = [
        (names.events_stream, names.events_of(user_id)),
        (names.frames_stream, names.frames(user_id)),
        (names.timers_stream, f"{names.namespace}.timers.*.{token}.*"),
    ]
    prefix = "KV_" + names.namespace.upper().replace("-", "_") + "_"
    for stream in await _stream_names(js):
        if stream.startswith(prefix):
            bucket = stream.removeprefix("KV_")
            found += [(stream, f"$KV.{bucket}.{token}"), (stream, f"$KV.{bucket}.{token}.>")]
    return found


async def _stream_names(js: JetStreamContext) -> list[str]:
    """Every stream on the server, page by page."""
    names: list[str] = []
    while page := await js.streams_info(offset=len(names)):
        names += [info.config.name or "" for info in page]
    return names
