"""Everything NATS sends one socket, and the rule that reconciles the copies.

An answer's frames take one path to the socket that asked: the reply subject of its chat.
Its lasting frames (``ui_actions`` and the end) are also kept in JetStream with an event
id and copied to the user's subject, where every socket of that user, on any gateway,
hears them; pushes arrive only that way.  The rule, all of it here:

- a frame with an event id reaches a socket at most once (it may come live, as a copy and
  in a replay);
- a copy of an answer's frame is for a socket that resumed and did not ask that chat (the
  socket that took over from a lost one); the asker has it from the reply subject;
- while a resume replays kept frames, live frames wait behind it, so order holds;
- while a chat of this socket waits for its answer, pushes wait too (at most
  ``PARKED_PUSHES``, in order) and follow right after that answer's end: the shipped client
  takes any frame with ``message``/``content`` as the answer, and a ``timer_expired`` or a
  ``proactive_alert`` has one.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Collection
from typing import Protocol

from nats.js import JetStreamContext
from pam_shared import delivery
from pam_shared.delivery import with_event_id
from pam_shared.subjects import Subjects

from pam_gateway.dialect import Dialect

log = logging.getLogger("pam.gateway.inbox")


class Sendable(Protocol):
    def put(self, text: str) -> None: ...


RECENT_EVENT_IDS = 64
"""Event ids remembered per socket: enough to cover one resume's overlap with live frames."""
PARKED_PUSHES = 32
"""Pushes held per socket while its chat waits; past that the oldest is dropped (and logged)."""


class Inbox:
    # Slots, and containers made only when first needed: thousands of idle sockets add up.
    __slots__ = ("user_id", "_outbox", "_dialect", "_kept", "_asked", "_resumed", "_recent_ids", "_held", "_parked")

    def __init__(self, user_id: str, outbox: Sendable, dialect: Dialect, kept: KeptFrames) -> None:
        self.user_id = user_id
        self._outbox = outbox  # the socket's send queue; frames reach it through the dialect
        self._dialect = dialect
        self._kept = kept
        self._asked: set[str] | None = None
        self._resumed = False
        self._recent_ids: deque[str] | None = None
        self._held: list[tuple[bytes, str | None]] | None = None
        self._parked: deque[tuple[bytes, str | None]] | None = None

    def asked(self, chat_id: str) -> None:
        """This socket is waiting for the answer to ``chat_id``."""
        if self._asked is None:
            self._asked = set()
        self._asked.add(chat_id)

    def answered(self, chat_id: str) -> None:
        """The answer to ``chat_id`` has been delivered (its end, or its refusal): pushes
        held behind it go out now, unless another chat of this socket still waits."""
        if self._asked is not None:
            self._asked.discard(chat_id)
        if self._parked and not self._asked:
            parked, self._parked = self._parked, None
            for frame, event_id in parked:
                self.deliver(frame, event_id)

    def deliver(self, frame: bytes, event_id: str | None) -> None:
        """Forward an encoded frame, stamped with its event id, once."""
        if self._held is not None:
            self._held.append((frame, event_id))
            return
        if event_id is not None:
            if self._recent_ids is None:
                self._recent_ids = deque(maxlen=RECENT_EVENT_IDS)
            elif event_id in self._recent_ids:
                return
            self._recent_ids.append(event_id)
            frame = with_event_id(frame, event_id)
        self._dialect.write(self._outbox.put, frame)

    def deliver_copy(self, frame: bytes, event_id: str | None, chat_id: str | None) -> None:
        """A frame from the user's subject: a push, or a lasting frame of some answer."""
        if chat_id is not None and (not self._resumed or (self._asked is not None and chat_id in self._asked)):
            return
        if chat_id is None and self._asked:
            self._park(frame, event_id)
            return
        self.deliver(frame, event_id)

    def _park(self, frame: bytes, event_id: str | None) -> None:
        if self._parked is None:
            self._parked = deque()
        elif len(self._parked) >= PARKED_PUSHES:
            dropped = self._parked.popleft()[1]
            log.warning("push %s dropped: %d pushes already wait behind an answer", dropped, PARKED_PUSHES)
        self._parked.append((frame, event_id))

    async def resume(self, after: int, pending: Collection[str], gap: Callable[[int], None]) -> int:
        """Replay every kept frame after event ``after``, and the kept answers to the chats
        whose message ids are ``pending`` (answers end out of order, so theirs may be older),
        then the live frames that arrived meanwhile.  ``gap`` hears the oldest event id still
        kept when frames after ``after`` have already left the window.  Returns how many
        frames were replayed."""
        self._resumed = True
        self._held = []
        replayed: list[tuple[bytes, str]] = []
        try:
            oldest = await self._kept.oldest()
            if after + 1 < oldest:
                gap(oldest)
            replayed = await self._kept.after(self.user_id, after, pending)
        finally:  # a replay that failed still lets the live frames it held through
            held, self._held = self._held, None
            for frame, event_id in [*replayed, *held]:
                self.deliver(frame, event_id)
        return len(replayed)


class KeptFrames:
    """The frames stream, read the ways the gateway needs it (see ``pam_shared.delivery``)."""

    def __init__(self, js: JetStreamContext, names: Subjects) -> None:
        self.js = js
        self.names = names

    async def oldest(self) -> int:
        return await delivery.oldest_event_id(self.js, self.names)

    async def after(self, user_id: str, after: int, pending: Collection[str] = ()) -> list[tuple[bytes, str]]:
        """``user_id``'s frames after event ``after``, preceded by older answers to ``pending``."""
        earlier = await delivery.kept_answers(self.js, self.names, user_id, replies_to=pending) if pending else []
        later = [msg async for msg in delivery.replay(self.js, self.names, user_id, after)]
        frames = [msg for msg in earlier if (msg.seq or 0) <= after] + later
        return [(msg.data or b"", str(msg.seq)) for msg in frames]

    async def answer(self, user_id: str, chat_id: str) -> list[tuple[bytes, str]]:
        """The kept frames of one answer, as far as it got."""
        kept = await delivery.kept_answers(self.js, self.names, user_id, chat_ids={chat_id})
        return [(msg.data or b"", str(msg.seq)) for msg in kept]

    async def answer_end(self, user_id: str, chat_id: str) -> list[tuple[bytes, str]]:
        """The kept frames of one answer, if its end is among them (else nothing)."""
        kept = await self.answer(user_id, chat_id)
        return kept if any(delivery.ends_answer(frame) for frame, _ in kept) else []
