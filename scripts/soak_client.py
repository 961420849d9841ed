"""One simulated user of the soak: chats, drops its own socket, reconnects and resumes.

It behaves like the seed's frontend plus the documented resume step: after a socket is
lost it waits 1 s, 2 s, 4 s, 8 s, then 10 s between attempts (reset once a socket opens),
reconnects to either gateway, and sends ``resume`` with the highest ``event_id`` it has
seen and the ids of its chats still waiting for an answer.  It stops sending on a socket
once the gateway says it is restarting, and it keeps a record of every chat, so the soak
can account for each ``message_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

BACKOFF_CAP_SECONDS = 10.0
OPEN_TIMEOUT_SECONDS = 5.0
CLOSE_TIMEOUT_SECONDS = 2.0
RESUME_CONFIRM_SECONDS = 10.0
SLOT_POLL_SECONDS = 0.25
MID_ANSWER_DROP_SECONDS = 0.03
"""A drop aimed at an answer comes this soon (at most) after the chat was written."""
DROP_FALLBACK_SECONDS = 2.0
"""A drop aimed at an answer happens anyway after this long, even if no chat was written."""
FINALS = ("chat_response", "error")
MESSAGES = (
    "how much fuel do I need to get to Cairns",
    "I spent $42.50 on diesel in Townsville",
    "what's my budget looking like this week",
    "find a campground near Airlie Beach",
    "what's the weather going to be like tomorrow",
    "remind me about the tyre service",
    "hello PAM",
)


@dataclass(frozen=True)
class Behaviour:
    """How every client of a run acts."""

    window: int
    """Chats it may have waiting for an answer on one socket before it waits too."""
    pause: float
    """Longest random pause (seconds) between two chats."""
    drop_every: float
    """Mean seconds between drops of its own socket (0: never)."""
    patience: float
    """An unanswered chat older than this stops holding a window slot."""
    directive: str
    """Appended to every message, e.g. ``[gap:0.05]`` for slow answers from the fake LLM."""
    cancels: float = 0.0
    """Chance that a chat is followed by a ``cancel`` of one of the client's unanswered chats."""
    on_busy: tuple[str, ...] = ()
    """Each chat asks for one of these at random (``enqueue``, ``reject``, ``interrupt``); empty: the server's."""


@dataclass
class Phases:
    """The run's shared clock: load, then settle on the open socket, then a final resume."""

    t0: float
    load_end: float
    settle_end: float
    deadline: float
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 3)


@dataclass
class ChatRecord:
    message_id: str
    retry_of: str | None = None
    written_at: float | None = None
    connection: int | None = None
    send_failed: bool = False
    replied: bool = False
    finals: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Connection:
    number: int
    port: int
    opened_at: float
    closed_at: float | None = None
    end: str | None = None
    written: list[str] = field(default_factory=list)
    event_ids: list[int] = field(default_factory=list)
    """Every event id received on this socket, in arrival order."""
    resumed_after: int | None = None
    restart_notice: bool = False
    drop_requested: bool = False
    dropped: bool = False
    closing: bool = False


class SoakClient:
    def __init__(
        self, user_id: str, token: str, ports: list[int], behaviour: Behaviour, phases: Phases, seed: int
    ) -> None:
        self.user_id = user_id
        self.token = token
        self.ports = ports
        self.behaviour = behaviour
        self.phases = phases
        self.rng = random.Random(seed)
        self.chats: dict[str, ChatRecord] = {}
        self.connections: list[Connection] = []
        self.counts: Counter[str] = Counter()
        self.highest_event_id = 0
        self.final_resume_done = False
        self._seen_event_ids: set[int] = set()
        self._retry: deque[ChatRecord] = deque()
        self._answered = asyncio.Event()
        self._pong = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._conn: Connection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._attempts = 0
        self._must_wait = False
        self._next_id = 0

    async def run(self) -> None:
        """The whole life of this user; every socket and task it made is gone when it returns."""
        try:
            await self._load()
            await self._settle()
            await self._final_resume()
        finally:
            await self._abandon()

    # phases

    async def _load(self) -> None:
        """Chat, drop and reconnect until the load ends."""
        while self._before(self.phases.load_end):
            if not await self._open(self.phases.load_end):
                return
            await self._chat_until_closed()

    async def _chat_until_closed(self) -> None:
        assert self._reader is not None
        sender = asyncio.create_task(self._send_loop())
        dropper = asyncio.create_task(self._drop_later())
        try:
            await asyncio.wait({self._reader}, timeout=self._left(self.phases.load_end))
        finally:
            await _cancel(sender, dropper)

    async def _settle(self) -> None:
        """Give the answers still owed on the open socket a bounded time to arrive there."""
        conn = self._conn
        while conn is not None and self._open_now() and self._unanswered(conn) and self._before(self.phases.settle_end):
            await self._wait_answered()

    async def _final_resume(self) -> None:
        """Reconnect and resume once more, and read until the soak has heard everything."""
        await self._close_current()
        done = self.phases.done
        while not done.is_set() and self._before(self.phases.deadline):
            if not await self._open(self.phases.deadline):
                return
            await self._confirm_resume()
            assert self._reader is not None
            waiter = asyncio.create_task(done.wait())
            try:
                ends = {self._reader, waiter}
                await asyncio.wait(ends, timeout=self._left(self.phases.deadline), return_when=asyncio.FIRST_COMPLETED)
            finally:
                await _cancel(waiter)
        await self._close_current()

    # sockets

    async def _open(self, deadline: float) -> bool:
        """Connect (backing off after a loss), then resume if this is a reconnect."""
        while True:
            if self._must_wait:
                delay = min(2.0**self._attempts, BACKOFF_CAP_SECONDS)
                if time.monotonic() + delay >= deadline:
                    return False
                await asyncio.sleep(delay)
                self._attempts += 1
            port = self.rng.choice(self.ports)
            ws = await self._handshake(port)
            if ws is not None:
                break
            self._must_wait = True
        self._attempts, self._must_wait = 0, False
        conn = Connection(number=len(self.connections) + 1, port=port, opened_at=self.phases.now())
        reconnect = bool(self.connections)
        self.connections.append(conn)
        self._ws, self._conn = ws, conn
        self._reader = asyncio.create_task(self._read(ws, conn))
        if reconnect:
            self.counts["reconnects"] += 1
            await self._resume(ws, conn)
        return True

    async def _handshake(self, port: int) -> ClientConnection | None:
        """Open a socket and read its first frame; None unless it says ``connected``."""
        url = f"ws://127.0.0.1:{port}/ws/{self.user_id}?token={self.token}"
        ws = None
        try:
            ws = await websockets.connect(
                url,
                open_timeout=OPEN_TIMEOUT_SECONDS,
                close_timeout=CLOSE_TIMEOUT_SECONDS,
                ping_interval=None,  # browsers do not ping
                max_size=None,
                compression=None,
            )
            first = json.loads(await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT_SECONDS))
        except (OSError, TimeoutError, websockets.WebSocketException, ValueError):
            self.counts["connect_failures"] += 1
            if ws is not None:
                ws.transport.abort()
            return None
        if first.get("type") == "connection" and first.get("status") == "connected":
            return ws
        self.counts[f"refused:{first.get('code')}"] += 1
        ws.transport.abort()
        return None

    async def _resume(self, ws: ClientConnection, conn: Connection) -> None:
        try:
            pending = [m for m, record in self.chats.items() if record.written_at and not record.finals][-100:]
            frame = {"type": "resume", "last_event_id": self.highest_event_id, "pending": pending}
            await ws.send(json.dumps(frame))
        except websockets.ConnectionClosed:
            self.counts["resume_send_failures"] += 1
            return
        conn.resumed_after = self.highest_event_id
        self.counts["resumes"] += 1

    async def _confirm_resume(self) -> None:
        """A pong after the resume proves the replay has been received: frames are handled in order."""
        assert self._ws is not None
        self._pong.clear()
        try:
            await self._ws.send(json.dumps({"type": "ping"}))
            await asyncio.wait_for(self._pong.wait(), RESUME_CONFIRM_SECONDS)
        except (websockets.ConnectionClosed, TimeoutError):
            return
        self.final_resume_done = True

    def _drop(self, ws: ClientConnection, conn: Connection) -> None:
        """The network drops: no close handshake, nothing more sent or read."""
        if conn.dropped or conn.end is not None:
            return
        conn.dropped = True
        self.counts["drops"] += 1
        ws.transport.abort()

    async def _close_current(self) -> None:
        if self._ws is None or self._conn is None or self._reader is None:
            return
        if not self._reader.done():
            self._conn.closing = True
            with contextlib.suppress(Exception):
                await self._ws.close()
        await _cancel(self._reader)

    async def _abandon(self) -> None:
        """On the way out (also when cancelled): cut whatever socket is still open."""
        if self._reader is not None and not self._reader.done():
            assert self._ws is not None and self._conn is not None
            self._conn.closing = True
            self._ws.transport.abort()
            await _cancel(self._reader)

    def _open_now(self) -> bool:
        return self._reader is not None and not self._reader.done()

    # reading

    async def _read(self, ws: ClientConnection, conn: Connection) -> None:
        code = None
        try:
            while True:
                self._on_text(await ws.recv(), conn)
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
        finally:
            self._ended(conn, code)

    def _ended(self, conn: Connection, code: int | None) -> None:
        """Say who ended a socket, so chats written on it can be judged fairly."""
        conn.closed_at = self.phases.now()
        if conn.dropped:
            conn.end = "client_drop"
        elif conn.closing:
            conn.end = "client_close"
        elif code is not None:
            conn.end = f"server_close_{code}"
        else:
            conn.end = "abnormal"
        self.counts[f"end:{conn.end}"] += 1
        self._must_wait = conn.end != "client_close"

    def _on_text(self, text: str | bytes, conn: Connection) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            self.counts["frames_not_json"] += 1
            return
        self._on_frame(frame, conn)

    def _on_frame(self, frame: dict[str, Any], conn: Connection) -> None:
        kind = frame.get("type")
        event_id = frame.get("event_id")
        if isinstance(event_id, int):
            self._note_event(event_id)
            conn.event_ids.append(event_id)
        record = self.chats.get(frame.get("reply_to") or "")
        if kind == "connection" and frame.get("status") == "disconnected":
            conn.restart_notice = True
            self.counts["restart_notices"] += 1
        elif kind == "pong":
            self._pong.set()
        elif kind in FINALS:
            self._on_final(frame, record, conn)
        elif record is not None:
            record.replied = True

    def _note_event(self, event_id: int) -> None:
        if event_id in self._seen_event_ids:
            self.counts["event_id_repeated"] += 1
        elif event_id < self.highest_event_id:
            self.counts["event_id_out_of_order"] += 1
        self._seen_event_ids.add(event_id)
        self.highest_event_id = max(self.highest_event_id, event_id)

    def _on_final(self, frame: dict[str, Any], record: ChatRecord | None, conn: Connection) -> None:
        if record is None:
            unmatched = "final_for_unknown_chat" if frame.get("reply_to") else f"error_without_reply_to:{frame['code']}"
            self.counts[unmatched] += 1
            return
        final = {"type": frame["type"], "code": frame.get("code"), "event_id": frame.get("event_id")}
        record.finals.append({**final, "connection": conn.number, "at": self.phases.now()})
        self._answered.set()

    # writing

    async def _send_loop(self) -> None:
        assert self._ws is not None and self._conn is not None
        ws, conn = self._ws, self._conn
        while await self._slot(conn):
            record = self._retry.popleft() if self._retry else self._new_chat()
            if not await self._write(ws, conn, record):
                return
            if self.rng.random() < self.behaviour.cancels and not await self._cancel_one(ws, conn):
                return
            if conn.drop_requested:
                await asyncio.sleep(self.rng.uniform(0, MID_ANSWER_DROP_SECONDS))
                self._drop(ws, conn)
                return
            await asyncio.sleep(self.rng.uniform(0.05, self.behaviour.pause))

    async def _slot(self, conn: Connection) -> bool:
        """Wait until fewer than ``window`` chats are owed on this socket; False once sending must stop."""
        while self._before(self.phases.load_end) and not conn.restart_notice:
            if len(self._holding(conn)) < self.behaviour.window:
                return True
            await self._wait_answered()
        return False

    async def _write(self, ws: ClientConnection, conn: Connection, record: ChatRecord) -> bool:
        """Send one chat; a send that fails is retried later as a new chat (the server does not dedupe)."""
        frame = {
            "type": "chat",
            "message": f"{self.rng.choice(MESSAGES)} {self.behaviour.directive}".strip(),
            "message_id": record.message_id,
            "user_id": self.user_id,
            "context": {"region": "Queensland", "current_page": "/soak"},
        }
        if self.behaviour.on_busy:
            frame["on_busy"] = self.rng.choice(self.behaviour.on_busy)
        try:
            await ws.send(json.dumps(frame))
        except websockets.ConnectionClosed:
            record.send_failed = True
            self.counts["send_failures"] += 1
            self._retry.append(self._new_chat(retry_of=record.message_id))
            return False
        record.written_at, record.connection = self.phases.now(), conn.number
        conn.written.append(record.message_id)
        return True

    async def _cancel_one(self, ws: ClientConnection, conn: Connection) -> bool:
        """Stop one of this socket's unanswered chats (it may end first: then nothing changes)."""
        owed = self._unanswered(conn)
        if not owed:
            return True
        try:
            await ws.send(json.dumps({"type": "cancel", "message_id": self.rng.choice(owed)}))
        except websockets.ConnectionClosed:
            return False
        self.counts["cancels_sent"] += 1
        return True

    def _new_chat(self, retry_of: str | None = None) -> ChatRecord:
        self._next_id += 1
        record = ChatRecord(message_id=f"{self.user_id}-{self._next_id:05d}", retry_of=retry_of)
        self.chats[record.message_id] = record
        return record

    async def _drop_later(self) -> None:
        """Drop this socket after a random time: half the time at once, half just after a chat went out."""
        assert self._ws is not None and self._conn is not None
        if self.behaviour.drop_every <= 0:
            return
        await asyncio.sleep(self.rng.expovariate(1 / self.behaviour.drop_every))
        if self.rng.random() < 0.5:
            self._conn.drop_requested = True
            await asyncio.sleep(DROP_FALLBACK_SECONDS)
        self._drop(self._ws, self._conn)

    # bookkeeping

    def _unanswered(self, conn: Connection) -> list[str]:
        return [m for m in conn.written if not self.chats[m].finals]

    def _holding(self, conn: Connection) -> list[str]:
        oldest = self.phases.now() - self.behaviour.patience
        return [m for m in self._unanswered(conn) if (self.chats[m].written_at or 0) > oldest]

    async def _wait_answered(self) -> None:
        self._answered.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._answered.wait(), SLOT_POLL_SECONDS)

    def _before(self, deadline: float) -> bool:
        return time.monotonic() < deadline

    def _left(self, deadline: float) -> float:
        return max(0.0, deadline - time.monotonic())


async def _cancel(*tasks: asyncio.Task[Any]) -> None:
    """Cancel tasks this client owns and wait until they are gone (our own cancellation still propagates)."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
