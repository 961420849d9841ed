"""Resumable delivery: frames kept in JetStream for the resume window, numbered by event id.

A frame worth replaying (an answer's ``ui_actions`` and its final ``chat_response`` or
``error``, and every push) is first stored on ``<ns>.frames.<user>``; its stream
sequence becomes its event id.  It is then sent live with the id in the
``Pam-Event-Id`` header, and gateways write the id into the JSON as they forward it.
A client that reconnects asks for every frame after the last id it saw.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection

import msgspec
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg, StreamConfig
from nats.js.errors import NotFoundError

from pam_shared import jetstream
from pam_shared.protocol import ANSWER_END_TYPES
from pam_shared.subjects import CHAT_ID_HEADER, EVENT_ID_HEADER, Subjects

log = logging.getLogger("pam.delivery")


async def ensure_frames_stream(js: JetStreamContext, names: Subjects, window_seconds: float, replicas: int = 1) -> None:
    config = StreamConfig(
        name=names.frames_stream, subjects=[names.frames_wildcard], max_age=window_seconds, num_replicas=replicas
    )
    await jetstream.ensure_stream(js, config)


async def store(js: JetStreamContext, names: Subjects, user_id: str, frame: bytes, chat_id: str | None = None) -> int:
    """Keep ``frame`` for the resume window (tagged with the chat it answers), riding through a
    leader change of the frames stream; returns its event id."""
    headers = {CHAT_ID_HEADER: chat_id} if chat_id else None
    ack = await jetstream.publish(js, names.frames(user_id), frame, headers)
    return ack.seq


async def keep_answer_frame(nc: Client, names: Subjects, user_id: str, chat_id: str, frame: bytes) -> str | None:
    """Keep one of an answer's lasting frames and copy it to the user's subject, so a socket
    that resumed elsewhere still gets the end of an answer it lost.  Returns the event id,
    or None when JetStream could not keep it (the frame still goes out live)."""
    try:
        event_id = str(await store(nc.jetstream(), names, user_id, frame, chat_id))
    except Exception as exc:  # JetStream trouble: not resumable, but not lost for a live socket
        log.warning("frame not kept for resume: %s", exc)
        return None
    headers = {EVENT_ID_HEADER: event_id, CHAT_ID_HEADER: chat_id}
    await nc.publish(names.user(user_id), frame, headers=headers)
    return event_id


def with_event_id(frame: bytes, event_id: bytes | str | int) -> bytes:
    """Write ``event_id`` into an encoded JSON object frame without decoding it."""
    return b'{"event_id":' + str(event_id).encode() + b"," + frame.lstrip()[1:]


async def replay(js: JetStreamContext, names: Subjects, user_id: str, after: int) -> AsyncIterator[RawStreamMsg]:
    """Every kept frame of ``user_id`` with an event id above ``after``, oldest first."""
    seq = max(after + 1, 1)
    while True:
        try:
            msg = await js.get_msg(names.frames_stream, seq=seq, subject=names.frames(user_id), next=True)
        except NotFoundError:
            return
        yield msg
        seq = (msg.seq or seq) + 1


class _Answered(msgspec.Struct):
    type: str = ""
    reply_to: str | None = None


_answered = msgspec.json.Decoder(_Answered)


async def kept_answers(
    js: JetStreamContext,
    names: Subjects,
    user_id: str,
    chat_ids: Collection[str] = (),
    replies_to: Collection[str] = (),
) -> list[RawStreamMsg]:
    """The kept frames answering given chats (by our chat id, or by the client's message id)."""
    found = []
    async for msg in replay(js, names, user_id, 0):
        chat_id = (msg.headers or {}).get(CHAT_ID_HEADER)
        if chat_id in chat_ids or (replies_to and _reply_to(msg.data) in replies_to):
            found.append(msg)
    return found


def ends_answer(frame: bytes | None) -> bool:
    """Whether a kept frame is the last of its answer (its ``chat_response`` or ``error``)."""
    try:
        return _answered.decode(frame or b"{}").type in ANSWER_END_TYPES
    except msgspec.DecodeError:
        return False


def _reply_to(frame: bytes | None) -> str | None:
    try:
        return _answered.decode(frame or b"{}").reply_to
    except msgspec.DecodeError:
        return None


async def oldest_event_id(js: JetStreamContext, names: Subjects) -> int:
    """The first event id still inside the resume window."""
    info = await js.stream_info(names.frames_stream)
    return info.state.first_seq


async def push(nc: Client, names: Subjects, user_id: str, frame: bytes, once: str | None = None) -> int:
    """Send a server frame to every socket ``user_id`` has open, resumable like an answer.
    Pushes with the same ``once`` key are kept once (within JetStream's duplicate window), so a
    push sent again after a crash keeps its event id and sockets drop the repeat."""
    headers = {"Nats-Msg-Id": once} if once else None
    ack = await jetstream.publish(nc.jetstream(), names.frames(user_id), frame, headers)
    event_id = ack.seq
    await nc.publish(names.user(user_id), frame, headers={EVENT_ID_HEADER: str(event_id)})
    return event_id
