"""A user's recent turns, kept where every orchestrator reads them without a database round trip.

Persistence stores each turn in PostgreSQL, but only after the answer's end has gone out:
a follow-up sent the moment an answer ends would reach the model without that turn.  So
the orchestrator that answers also keeps the user's last turns in a JetStream key-value
entry (one per user), written *before* it sends the end, and read from the bucket's
stream leader (no direct gets from replicas that may lag): a chat sent after its client
saw the previous end always finds that turn.  Two orchestrators answering one user at once
update the entry by compare-and-set on its revision, merging, so neither loses a turn.

A user without an entry (new, idle past the conversation gap so the entry expired, or one
whose entry could not be written) is asked of persistence (``history``), as before.  The
conversation is where persistence would place it: turns no more than
``PAM_CONVERSATION_IDLE_MINUTES`` apart, the last of them within that gap of the new chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import msgspec
from nats.aio.client import Client
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pam_shared import jetstream
from pam_shared.internal import ChatRequest, Turn
from pam_shared.subjects import Subjects, user_token

from pam_orchestrator import history

log = logging.getLogger("pam.orchestrator.turns")

READ_TIMEOUT_SECONDS = 0.5
WRITE_TIMEOUT_SECONDS = 1.0
"""The answer's end waits for the write: JetStream gets this long, then the entry is dropped."""
WRITE_ATTEMPTS = 5
PLACED_APART_SECONDS = 0.001
"""Persistence's turns come without times; they are placed this far apart just before the chat."""


class Kept(msgspec.Struct, array_like=True, gc=False):
    """One turn in the entry, with when it happened (Unix seconds), its message id and the
    client's id of its chat (so a regenerate or an edit can find it)."""

    role: str
    content: str
    at: float
    id: str = ""
    cid: str = ""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(list[Kept])


@dataclass
class Recall:
    """What one chat found before it was answered; ``keep`` adds its own turns afterwards."""

    store: RecentTurns
    chat: ChatRequest
    turns: list[Turn]
    kept: list[Kept]
    revision: int | None
    """The entry's revision as read; None when there was no entry."""
    answer_id: str = ""
    fork: int | None = None
    """Where a regenerate or an edit branches off: its turns replace the kept ones from here."""
    parent_id: str = ""
    """The user message the answer answers: the chat's own, or (a regenerate) the earlier one's."""

    def branched(self) -> ChatRequest | None:
        """The chat to answer, aimed at the turn a regenerate or an edit names: the history stops
        before it, and a regenerate takes its question's text.  None: that turn is not among the
        recent ones (too old, or not this user's)."""
        chat, target = self.chat, self.chat.regenerate or self.chat.edit_of
        self.parent_id = chat.chat_id
        if target is None:
            return chat
        role = "assistant" if chat.regenerate else "user"
        found = [i for i, turn in enumerate(self.kept) if turn.role == role and target in (turn.id, turn.cid)]
        if not found:
            return None
        at = found[-1] - 1 if chat.regenerate else found[-1]  # the answer's question, or the edited message
        if at < 0 or self.kept[at].role != "user":
            return None
        question, gap, limit = self.kept[at], self.store.gap, self.store.limit
        self.turns = conversation(self.kept[:at], question.at, gap, limit)
        if chat.regenerate:
            self.fork, self.parent_id = at + 1, question.id
            self.chat = msgspec.structs.replace(chat, message=question.content)
        else:
            self.fork = at
        return self.chat

    async def keep(self, answer: str | None) -> None:
        """Before the end is sent: the chat (a regenerate has none of its own), and its answer
        unless it failed (persistence keeps a failed chat's message too).  JetStream trouble costs
        the entry, never the answer."""
        chat, cid = self.chat, self.chat.message_id or ""
        new = [] if chat.regenerate else [Kept("user", chat.message, chat.received_at, chat.chat_id, cid)]
        if answer:
            new.append(Kept("assistant", answer, time.time(), self.answer_id, cid))
        kept = self.kept if self.fork is None else self.kept[: self.fork]
        await self.store.add(user_token(chat.user_id), kept, self.revision, new, replace=self.fork is not None)


class RecentTurns:
    def __init__(self, nc: Client, names: Subjects, limit: int, gap_seconds: float) -> None:
        self.nc, self.names, self.limit, self.gap = nc, names, limit, gap_seconds
        self._kv: KeyValue | None = None

    async def start(self, replicas: int) -> None:
        """The bucket; an entry lasts one conversation gap after its last write."""
        config = KeyValueConfig(bucket=self.names.turns_bucket, ttl=self.gap, replicas=replicas, direct=False)
        self._kv = await jetstream.ensure_bucket(self.nc.jetstream(), config)

    async def recall(self, chat: ChatRequest, answer_id: str = "") -> Recall:
        """The turns of the user's conversation before ``chat``: the entry's, else persistence's."""
        if self.limit <= 0:
            return Recall(self, chat, [], [], None, answer_id)
        found = await self._read(user_token(chat.user_id))
        if found is not None:
            kept, revision = found
            turns = conversation(kept, chat.received_at, self.gap, self.limit)
            return Recall(self, chat, turns, kept, revision, answer_id)
        turns = await history.recent_turns(self.nc, self.names, chat, self.limit)
        return Recall(self, chat, turns, placed_before(turns, chat.received_at), None, answer_id)

    async def add(
        self, key: str, kept: list[Kept], revision: int | None, new: list[Kept], replace: bool = False
    ) -> None:
        """Lay ``new`` into the entry; ``replace``: the entry becomes ``kept`` then ``new`` (a branch)."""
        if self.limit <= 0:
            return
        assert self._kv is not None
        try:
            await asyncio.wait_for(self._write(key, kept, revision, new, replace), WRITE_TIMEOUT_SECONDS)
        except Exception as exc:  # a stale entry would hide this turn: none sends the next chat to persistence
            log.warning("recent turns not kept, dropping the entry: %r", exc)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._kv.delete(key), WRITE_TIMEOUT_SECONDS)

    async def _write(self, key: str, kept: list[Kept], revision: int | None, new: list[Kept], replace: bool) -> None:
        """Compare-and-set: on a concurrent write, read the entry again and merge into that (a
        branch cannot be merged: it fails, and the entry is dropped)."""
        assert self._kv is not None
        for _ in range(1 if replace else WRITE_ATTEMPTS):
            value = _encoder.encode([*kept, *new][-self.limit :] if replace else merged(kept, new, self.limit))
            try:
                if revision is None:
                    await self._kv.create(key, value)
                else:
                    await self._kv.update(key, value, last=revision)
                return
            except KeyWrongLastSequenceError:
                kept, revision = await self._read(key) or ([], None)
        raise RuntimeError(f"entry changed {WRITE_ATTEMPTS} times while being written")

    async def _read(self, key: str) -> tuple[list[Kept], int] | None:
        """The entry and its revision; None when there is none, or it cannot be read in time."""
        assert self._kv is not None
        try:
            entry = await asyncio.wait_for(self._kv.get(key), READ_TIMEOUT_SECONDS)
            return _decoder.decode(entry.value or b"[]"), entry.revision or 0
        except KeyNotFoundError:
            return None
        except Exception as exc:  # JetStream trouble, or an entry of another format: ask persistence
            log.warning("recent turns unreadable, asking persistence: %r", exc)
            return None


def conversation(kept: list[Kept], before: float, gap: float, limit: int) -> list[Turn]:
    """The last ``limit`` turns of the conversation going on at ``before`` (``kept`` is in time order):
    back from ``before`` for as long as no two turns are more than ``gap`` apart."""
    earlier = [turn for turn in kept if turn.at < before]
    start, last = len(earlier), before
    while start and last - earlier[start - 1].at <= gap:
        start -= 1
        last = earlier[start].at
    return [Turn(role=turn.role, content=turn.content) for turn in earlier[start:][-limit:]]


def merged(kept: list[Kept], new: list[Kept], limit: int) -> list[Kept]:
    """``new`` laid into ``kept`` in time order (a turn already there is not added twice), the last ``limit``."""
    there = {(turn.role, turn.at) for turn in kept}
    added = [turn for turn in new if turn.content and (turn.role, turn.at) not in there]
    return sorted([*kept, *added], key=lambda turn: turn.at)[-limit:]


def placed_before(turns: list[Turn], at: float) -> list[Kept]:
    """Persistence's turns (oldest first) as entry turns: in order, just before ``at``; they are of
    the conversation going on at ``at``, which is all the gap rule asks of them."""
    count = len(turns)
    return [Kept(t.role, t.content, at - (count - i) * PLACED_APART_SECONDS) for i, t in enumerate(turns)]
