"""Who is answering each user right now, cluster-wide: the rule for a second message.

One entry per user in the JetStream key-value bucket ``<NS>_ANSWERING`` names the chat being
answered and the orchestrator answering it.  Every write is a compare-and-set on the revision
last seen, so of two chats arriving at once on two orchestrators exactly one gets the turn.
The turn is given up without a write: the entry stays (``lingers``), its orchestrator forgets
it, and the entry's revision rides back to the gateway on the answer's end.  The user's next
chat hands it back (``ChatRequest.turn``) and takes the turn in one call, a compare-and-set on
it (it succeeds only if nobody took the turn since that answer's end).  A chat with a missing
or stale hint reads the entry, and a lingering holder is asked of its orchestrator at once
(``<ns>.orchestrator.<instance>.holding``, answered from memory): "no" (its turn given up, or
restarted) and the hold is taken over by the same compare-and-set.
A chat that finds the turn taken follows its policy: ``reject`` (refused with ``busy``),
``enqueue`` (waits in the user's queue, the entry ``<user>.queue``, first come first served)
or ``interrupt`` (the holder is stopped, and this chat goes first).  A waiting chat's ask
says it waits: that turn's release is then announced on ``<ns>.released.<user>`` with the
answer's id, and the waiters wake at once; a chat nobody waits for publishes nothing.

A hold lasts at most its answer's deadline plus a margin: a chat that finds an older one takes
it over, so a dead orchestrator never blocks a conversation.  No responders at two asks a
heartbeat apart (its connection is gone: killed, or its machine; once may be a reconnect) also
ends a hold; no reply in time proves nothing (a busy orchestrator).  The subscription outlives
the orchestrator's drain (it is not a service endpoint), so a draining holder is not taken for
dead.  A queued chat whose orchestrator stopped refreshing it is passed over.

An older version's hold (no ``lingers``) is given up by writing the free entry, and its release
is announced only when a waiter marked it (``awaited``): a chat waiting for one marks it, and
asks its orchestrator only after a heartbeat without a release.  An older orchestrator takes a
lingering hold for live until its time is up or, waiting for it, its orchestrator says "no".

A stop is the waiting task's cancellation, and a cancellation that comes as the answer to a
request arrives is swallowed on the way (``asyncio.wait_for`` before Python 3.12, which every
nats-py request goes through, returns the answer instead): the wait looks at the task's
pending cancellations after each step, and a stopped chat gives back the turn it may have
taken meanwhile (its write made, the answer to it lost to the stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pam_shared import jetstream
from pam_shared.background import survive
from pam_shared.internal import ChatRequest, HoldQuery, HoldReply, hold_encoder, hold_query_decoder, hold_reply_decoder
from pam_shared.protocol import OnBusy
from pam_shared.subjects import Subjects, user_token

log = logging.getLogger("pam.orchestrator.holds")

HOLD_MARGIN_SECONDS = 5.0
"""After its deadline an answer still sends its end and records it: the hold outlives it this long."""
ASK_TIMEOUT_SECONDS = 1.0
"""How long a chat waits for the holder's orchestrator to say whether it still answers."""


Verdict = Literal["answering", "ended", "missing", "unknown"]
"""What a chat learns of the holder's answer by asking its orchestrator."""


class Hold(msgspec.Struct, gc=False, omit_defaults=True):
    """A chat being answered: the client's id of it, the answer's id, and who answers it."""

    chat_id: str
    message_id: str | None
    answer_id: str
    orchestrator: str
    until: float
    """Unix time; a hold older than this is abandoned and may be taken over."""
    awaited: bool = False
    """A chat waits for this one: its release is announced (an older version's waiters mark it)."""
    asked: bool = False
    """Its orchestrator answers ``holding_at``, so a waiter may ask whether it still answers
    (False: an older version's hold, which lasts its lifetime)."""
    lingers: bool = False
    """Given up without a write: only its orchestrator (asked) or the release announced tells
    whether its answer goes on (False: an older version's, given up by writing the free entry)."""


class Queue(msgspec.Struct, gc=False):
    """The chats waiting for the hold, in order; each refreshes ``until`` while it waits."""

    waiting: list[Hold] = []


class Busy(Exception):
    """The user's conversation is answering another chat, and this one may not wait."""

    def __init__(self, holder: Hold) -> None:
        super().__init__(holder.chat_id)
        self.holder = holder


Announce = Callable[[int], Awaitable[None]]
"""Told the chat's place in the queue (1: next) each time it is refreshed, every ``heartbeat``."""
Stop = Callable[[Hold], Awaitable[None]]
"""Asks the holder's orchestrator to stop its answer (``interrupt``)."""

_hold = msgspec.json.Decoder(Hold)
_queue = msgspec.json.Decoder(Queue)
_encoder = msgspec.json.Encoder()

FREE = _encoder.encode(Hold("", None, "", "", until=0.0))
"""The entry of a turn an older version gave up: to an older one still, an abandoned hold."""


class Holds:
    def __init__(self, nc: Client, names: Subjects, instance: str, deadline: float, heartbeat: float) -> None:
        self.nc, self.names, self.instance = nc, names, instance
        self.lifetime = deadline + HOLD_MARGIN_SECONDS
        self.heartbeat = heartbeat
        self._kv: KeyValue | None = None
        self._held: dict[str, bool] = {}
        """The answers here that hold (or are taking) their turn, and whether a chat waits for
        it (their release is announced); an answer not here has given its turn up."""

    async def start(self, replicas: int = 1) -> None:
        # In memory: a hold lives seconds, and one lost with its server has expired by then anyway.
        config = KeyValueConfig(
            bucket=self.names.answering_bucket,
            history=1,
            ttl=self.lifetime * 4,
            replicas=replicas,
            storage=StorageType.MEMORY,
        )
        self._kv = await jetstream.ensure_bucket(self.nc.jetstream(), config)
        await self.nc.subscribe(self.names.holding_at(self.instance), cb=self._on_holding)

    async def _on_holding(self, msg: Msg) -> None:
        """A chat that found one of our holds asks whether its answer still has the turn; one that
        will wait for it asks to hear its release."""
        with survive("orchestrator-holds", "hold query"):
            query = hold_query_decoder.decode(msg.data)
            holding = query.answer_id in self._held
            if holding and query.waiting:
                self._held[query.answer_id] = True
            await msg.respond(hold_encoder.encode(HoldReply(holding)))

    async def take(self, chat: ChatRequest, answer_id: str, policy: OnBusy, announce: Announce, stop: Stop) -> int:
        """Wait for the user's turn as ``policy`` says; returns the hold's revision (for ``release``,
        which the caller owes however the answer goes, even after JetStream trouble here).
        A chat that finds the turn free goes first even while others queue (they are between
        a release and taking it): no queue read on the common path."""
        me = Hold(chat.chat_id, chat.message_id, answer_id, self.instance, 0.0, asked=True, lingers=True)
        self._held[answer_id] = False  # before our entry may be written: a chat finding it is told we hold it
        judge = _Judge(self, chat.user_id)
        try:
            taken, holder = await self._try(chat.user_id, me, judge, first=True, hint=chat.turn)
            _unless_stopped()
            if taken is not None:
                return taken  # the common case: no other answer to this user under way
            return await self._queue_up(chat, me, holder, judge, policy, announce, stop)
        except asyncio.CancelledError:
            await self.give_up(chat, answer_id)
            raise
        except Busy:
            del self._held[answer_id]
            raise

    async def _queue_up(
        self,
        chat: ChatRequest,
        me: Hold,
        holder: Hold | None,
        judge: _Judge,
        policy: OnBusy,
        announce: Announce,
        stop: Stop,
    ) -> int:
        """Wait in the user's queue (or be refused) until the turn is ours."""
        user = user_token(chat.user_id)
        released = await self.nc.subscribe(self.names.released(chat.user_id))
        queued = False
        try:
            while True:
                if holder is not None and policy == "reject":
                    raise Busy(holder)
                if holder is not None and policy == "interrupt" and not queued:
                    await stop(holder)
                if not queued:
                    queued = True
                    await self._join(user, me, at_front=policy == "interrupt")
                await self._announce(user, me, announce)
                # Again now that we listen: the turn may have been given up before we did.
                first = await self._first(user, me)
                taken, holder = await self._try(chat.user_id, me, judge, first, waiting=True)
                _unless_stopped()
                if taken is not None:
                    self._held[me.answer_id] = True  # others may wait behind it, an older version's without asking
                    return taken
                heard = await self._wait(released, holder)
                _unless_stopped()
                judge.heard(heard, due=first and holder is not None)
        finally:
            await released.unsubscribe()
            if queued:
                await self._leave(user, me.chat_id)

    async def give_up(self, chat: ChatRequest, answer_id: str) -> None:
        """A chat stopped before its answer: out of the queue, and the turn it may have taken
        meanwhile given back as a release is (a chat may wait behind it).  JetStream trouble
        leaves its queue entry to expire."""
        await self.release(chat, answer_id, None)
        await self._leave(user_token(chat.user_id), chat.chat_id)

    async def release(self, chat: ChatRequest, answer_id: str, revision: int | None) -> int | None:
        """Give the turn up, writing nothing: from now on, asked, we say its answer has ended.
        Announced when a chat waits for it.  Returns ``revision``, the hold's, the next chat's
        hint: a compare-and-set on it succeeds only if nobody took the turn since."""
        if self._held.pop(answer_id, False):
            try:
                await self.nc.publish(self.names.released(chat.user_id), answer_id.encode())
            except NatsError as exc:  # the waiters ask again at their next heartbeat
                log.warning("a release not announced: %r", exc)
        return revision

    async def find(self, user_id: str, message_id: str) -> Hold | None:
        """The user's chat, answering or queued, that ``message_id`` names (the client's id or the answer's)."""
        user = user_token(user_id)
        holder = (await self._latest(user))[1]
        waiting = (await self._read_queue(user))[0].waiting
        for hold in [*([holder] if holder else []), *waiting]:
            if message_id in (hold.message_id, hold.answer_id):
                return hold
        return None

    async def _try(
        self, user_id: str, me: Hold, judge: _Judge, first: bool, hint: int | None = None, waiting: bool = False
    ) -> tuple[int | None, Hold | None]:
        """Take the turn: ``(revision, None)``, or ``(None, holder)`` when another chat has it
        (``(None, None)``: free, but another chat is first in the queue).  ``hint``: the revision
        of the hold last given up (an older version's free entry), tried before anything is
        read.  A ``waiting`` chat asks to hear the holder's release (an older version's: marks
        it), and holds its own turn marked (an older version's chats may still wait behind it)."""
        assert self._kv is not None
        user = user_token(user_id)
        mine = _encoder.encode(msgspec.structs.replace(me, until=time.time() + self.lifetime, awaited=waiting))
        if first and hint:
            with contextlib.suppress(KeyWrongLastSequenceError):
                return await self._kv.update(user, mine, last=hint), None
        while True:  # until no one wrote between our read and our write
            revision, holder = await self._latest(user)
            try:
                if holder is not None and holder.chat_id != me.chat_id and await judge.live(holder, waiting):
                    if waiting and not holder.lingers and not holder.awaited:
                        marked = msgspec.structs.replace(holder, awaited=True)
                        await self._kv.update(user, _encoder.encode(marked), last=revision)
                    return None, holder
                if not first:
                    return None, holder
                if holder is not None and holder.until <= time.time():
                    log.warning("taking over the hold of chat %s (%s)", holder.chat_id, holder.orchestrator)
                return await self._kv.update(user, mine, last=revision), None
            except KeyWrongLastSequenceError:
                continue

    async def _latest(self, user: str) -> tuple[int, Hold | None]:
        """The user's turn entry: its revision (0: none; a delete marker's is its own) and holder (None: free)."""
        assert self._kv is not None
        try:
            entry = await self._kv.get(user)
        except KeyNotFoundError as gone:  # never written, expired, purged; or deleted by an older release
            marker = gone.entry
            return (marker.revision or 0) if marker is not None else 0, None
        value = entry.value or FREE
        return entry.revision or 0, None if value == FREE else _hold.decode(value)

    async def _read_queue(self, user: str) -> tuple[Queue, int | None]:
        assert self._kv is not None
        try:
            entry = await self._kv.get(f"{user}.queue")
        except KeyNotFoundError:
            return Queue(), None
        return _queue.decode(entry.value or b""), entry.revision

    async def _edit(self, user: str, change: Callable[[list[Hold]], list[Hold]]) -> list[Hold]:
        """Change the user's queue by compare-and-set (dropping chats that stopped refreshing)."""
        assert self._kv is not None
        while True:
            queue, revision = await self._read_queue(user)
            now = time.time()
            waiting = change([hold for hold in queue.waiting if hold.until > now])
            value = _encoder.encode(Queue(waiting))
            try:
                if revision is None:
                    await self._kv.create(f"{user}.queue", value)
                else:
                    await self._kv.update(f"{user}.queue", value, last=revision)
                return waiting
            except KeyWrongLastSequenceError:
                continue

    async def _join(self, user: str, me: Hold, at_front: bool) -> None:
        me = self._refreshed(me)
        await self._edit(user, lambda waiting: [me, *waiting] if at_front else [*waiting, me])

    def _refreshed(self, me: Hold) -> Hold:
        """Our queue entry, good for a few more heartbeats."""
        return msgspec.structs.replace(me, until=time.time() + 3 * self.heartbeat + 1)

    async def _leave(self, user: str, chat_id: str) -> None:
        with contextlib.suppress(Exception):  # a chat that leaves anyway is dropped once it stops refreshing
            await self._edit(user, lambda waiting: [hold for hold in waiting if hold.chat_id != chat_id])

    async def _first(self, user: str, me: Hold) -> bool:
        waiting = (await self._read_queue(user))[0].waiting
        live = [hold for hold in waiting if hold.until > time.time()]
        return not live or live[0].chat_id == me.chat_id

    async def _announce(self, user: str, me: Hold, announce: Announce) -> None:
        """Refresh our place in the queue (so we are not taken for gone) and say where it is."""
        fresh = self._refreshed(me)

        def refreshed(waiting: list[Hold]) -> list[Hold]:
            return [fresh if hold.chat_id == me.chat_id else hold for hold in waiting]

        waiting = await self._edit(user, refreshed)
        position = next((i for i, hold in enumerate(waiting, 1) if hold.chat_id == me.chat_id), len(waiting) + 1)
        await announce(position)

    async def _wait(self, released: Subscription, holder: Hold | None) -> bytes | None:
        """Until a release is announced (what it says), the holder's time is up, or it is time to refresh (None)."""
        bound = self.heartbeat if holder is None else min(self.heartbeat, max(0.05, holder.until - time.time()))
        try:
            return (await released.next_msg(timeout=bound)).data
        except TimeoutError:
            return None

    async def ask(self, user_id: str, holder: Hold, waiting: bool) -> Verdict:
        """What the holder's orchestrator says of its answer (``waiting``: and announce its release
        to us); no reply in time proves nothing."""
        if not holder.asked:
            return "unknown"
        query = _encoder.encode(HoldQuery(user_id, holder.answer_id, waiting))
        subject = self.names.holding_at(holder.orchestrator)
        try:
            reply = await self.nc.request(subject, query, timeout=ASK_TIMEOUT_SECONDS)
        except NoRespondersError:
            log.info("orchestrator %s not on NATS, with the hold of chat %s", holder.orchestrator, holder.chat_id)
            return "missing"
        except (NatsError, TimeoutError):
            return "unknown"
        try:
            return "answering" if hold_reply_decoder.decode(reply.data).answering else "ended"
        except msgspec.DecodeError:
            return "unknown"


class _Judge:
    """What one chat has learned of the holders it found: an answer known to have ended (its
    release heard, or its orchestrator said so), one found missing from NATS and since when."""

    def __init__(self, holds: Holds, user_id: str) -> None:
        self.holds, self.user_id = holds, user_id
        self.gone = ""
        self.missing: tuple[str, float] | None = None
        self.due = False
        """An older version's holder is asked: a heartbeat passed without its release."""

    def heard(self, release: bytes | None, due: bool) -> None:
        """After a wait: a release names the answer that ended (an older version's names none)."""
        if release:
            self.gone = release.decode()
        self.due = release is None and due

    async def live(self, holder: Hold, waiting: bool) -> bool:
        """Whether ``holder`` still has the turn, as far as we can tell.  A lingering hold is asked
        of its orchestrator at once (its entry cannot tell), an older one once ``due``."""
        if holder.until <= time.time() or holder.answer_id == self.gone:
            return False
        if not (holder.lingers or self.due):
            return True
        self.due = False
        verdict = await self.holds.ask(self.user_id, holder, waiting)
        if verdict == "ended" or (verdict == "missing" and self._missing_a_heartbeat(holder)):
            log.log(
                logging.DEBUG if verdict == "ended" and holder.lingers else logging.WARNING,
                "the hold of chat %s (%s) has ended: %s",
                holder.chat_id,
                holder.orchestrator,
                verdict,
            )
            self.gone = holder.answer_id
            return False
        if verdict != "missing":
            self.missing = None
        return True

    def _missing_a_heartbeat(self, holder: Hold) -> bool:
        """Missing now, and at an ask a heartbeat ago or more (once may be a reconnect)."""
        now = time.monotonic()
        if self.missing is None or self.missing[0] != holder.answer_id:
            self.missing = (holder.answer_id, now)
            return False
        return now - self.missing[1] >= self.holds.heartbeat


def _unless_stopped() -> None:
    """Raise the task's cancellation if one is pending that a step of the wait swallowed (a stop
    read together with the answer to a request): it still stops the chat."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
