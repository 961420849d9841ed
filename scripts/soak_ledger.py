"""The soak's accounting: which chats reached a gateway, which were answered, lost or answered twice.

The gateways' own record says which chats they read: every chat a gateway accepts is
journaled as a ``UserMessage`` event (with the client's ``message_id``) before it is
handed to an orchestrator.  Reading that stream is how the soak tells "the server got
it and never answered" (lost) from "the client's own socket died before the chat left
the machine" (not sent).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from pam_shared import delivery
from pam_shared.events import Answer, AssistantMessage, UserMessage, event_decoder
from pam_shared.subjects import Subjects
from soak_client import ChatRecord, Connection, SoakClient

DETAIL_LIMIT = 50
"""At most this many lost or duplicated chats are described one by one."""
NEARBY_SECONDS = 15.0
"""Chaos events this close to a lost chat are listed with it."""
LOG_LINE_LIMIT = 20
EVENT_ID_TAIL = 8

SHOWN_COUNTS = frozenset({"reconnects", "resumes", "drops", "connect_failures", "restart_notices"})
"""Client counters with a row of their own; the rest are listed as they are."""

Pair = tuple[SoakClient, ChatRecord]


@dataclass(frozen=True)
class Read:
    """A gateway's record of reading one chat."""

    at: float
    """Soak seconds."""
    session_id: str
    trace_id: str | None
    """Service log lines about this chat carry it, so the evidence can quote them."""


class Journal:
    """Follows the events stream: chats the gateways read, and chats an orchestrator answered."""

    def __init__(self, js: JetStreamContext, names: Subjects, t0: float) -> None:
        self.js = js
        self.names = names
        self.offset = time.time() - time.monotonic() + t0
        """Subtracted from an event's wall-clock time, it gives soak seconds."""
        self.read: dict[str, Read] = {}
        """Client message id -> the gateway's record of reading it."""
        self.answered: set[str] = set()
        """Client message ids an orchestrator recorded a finished answer for."""
        self.last_seq = 0
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self.js.subscribe(self.names.events_wildcard, ordered_consumer=True, cb=self._on_event)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    async def caught_up(self) -> bool:
        info = await self.js.stream_info(self.names.events_stream)
        return self.last_seq >= info.state.last_seq

    async def _on_event(self, msg: Msg) -> None:
        self.last_seq = msg.metadata.sequence.stream
        try:
            event = event_decoder.decode(msg.data)
        except msgspec.DecodeError:
            return
        if isinstance(event, UserMessage) and event.client_message_id:
            at = round(event.created_at - self.offset, 3)
            self.read[event.client_message_id] = Read(at, event.session_id, event.trace_id)
        elif isinstance(event, AssistantMessage | Answer) and event.reply_to:
            self.answered.add(event.reply_to)


def reached(record: ChatRecord, journal: Journal) -> bool:
    """A gateway read this chat: it journaled it, or something answering it came back."""
    return record.message_id in journal.read or record.replied or bool(record.finals)


def outstanding(clients: list[SoakClient], journal: Journal) -> int:
    """Chats a gateway read that have no answer yet."""
    return sum(1 for c in clients for r in c.chats.values() if reached(r, journal) and not r.finals)


def troubled(clients: list[SoakClient], journal: Journal) -> tuple[list[Pair], list[Pair]]:
    """The lost chats and the duplicated ones."""
    sent = [(c, r) for c in clients for r in c.chats.values() if reached(r, journal)]
    return [(c, r) for c, r in sent if not r.finals], [(c, r) for c, r in sent if len(r.finals) > 1]


def to_explain(clients: list[SoakClient], journal: Journal) -> list[Pair]:
    """The chats whose evidence the report spells out."""
    lost, duplicated = troubled(clients, journal)
    return lost[:DETAIL_LIMIT] + duplicated[:DETAIL_LIMIT]


async def kept_finals(js: JetStreamContext, names: Subjects, pairs: list[Pair]) -> dict[str, list[dict[str, Any]]]:
    """What the resume window holds for these chats (read before the run's streams are deleted)."""
    wanted = {r.message_id for _, r in pairs}
    kept: dict[str, list[dict[str, Any]]] = {}
    for user in sorted({c.user_id for c, _ in pairs}):
        async for msg in delivery.replay(js, names, user, 0):
            frame = json.loads(msg.data)
            if frame.get("reply_to") in wanted:
                kept.setdefault(frame["reply_to"], []).append({"event_id": msg.seq, "type": frame["type"]})
    return kept


def account(
    clients: list[SoakClient],
    journal: Journal,
    timeline: list[dict[str, Any]],
    log_dir: Path,
    kept: dict[str, list[dict[str, Any]]],
) -> dict[str, Any]:
    """Every number the soak reports, and the evidence for each lost or duplicated chat."""
    records = [(c, r) for c in clients for r in c.chats.values()]
    sent = [(c, r) for c, r in records if reached(r, journal)]
    lost, duplicated = troubled(clients, journal)
    not_sent = [(c, r) for c, r in records if r.written_at is not None and not reached(r, journal)]
    counts = sum((c.counts for c in clients), Counter())
    logs = _read_logs(log_dir) if lost or duplicated else []
    evidence = Evidence(journal, timeline, logs, kept)
    lost_chats = [evidence.of(c, r) for c, r in lost[:DETAIL_LIMIT]]
    duplicated_chats = [evidence.of(c, r) for c, r in duplicated[:DETAIL_LIMIT]]
    return {
        "chats": {
            "written": sum(1 for _, r in records if r.written_at is not None),
            "send_failed": sum(1 for _, r in records if r.send_failed),
            "sent": len(sent),
            "answered": len(sent) - len(lost),
            "lost": len(lost),
            "duplicated": len(duplicated),
            "not_sent_by_socket_end": dict(Counter(_connection(c, r).end or "open" for c, r in not_sent)),
            "sent_but_not_journaled": sum(1 for _, r in sent if r.message_id not in journal.read),
        },
        "answers": {
            "by_final": dict(Counter(_final_name(f) for _, r in sent for f in r.finals[:1])),
            "on_the_socket_that_asked": sum(1 for _, r in sent if r.finals and _first_on_asking_socket(r)),
            "on_a_later_socket": sum(1 for _, r in sent if r.finals and not _first_on_asking_socket(r)),
        },
        "connections": {
            "opened": sum(len(c.connections) for c in clients),
            "reconnects": counts["reconnects"],
            "resumes": counts["resumes"],
            "own_drops": counts["drops"],
            "connect_failures": counts["connect_failures"],
            "restart_notices": counts["restart_notices"],
            "ends": {k.removeprefix("end:"): v for k, v in sorted(counts.items()) if k.startswith("end:")},
        },
        "other_counts": {k: v for k, v in sorted(counts.items()) if k not in SHOWN_COUNTS and not k.startswith("end:")},
        "lost_by_cause": dict(Counter(item["cause"] for item in lost_chats)),
        "duplicated_by_cause": dict(Counter(item["cause"] for item in duplicated_chats)),
        "lost_chats": lost_chats,
        "duplicated_chats": duplicated_chats,
    }


def _final_name(final: dict[str, Any]) -> str:
    return final["type"] if final["type"] != "error" else f"error:{final['code']}"


def _first_on_asking_socket(record: ChatRecord) -> bool:
    return record.finals[0]["connection"] == record.connection


def _connection(client: SoakClient, record: ChatRecord) -> Connection:
    assert record.connection is not None
    return client.connections[record.connection - 1]


def _cause(item: dict[str, Any]) -> str:
    """The likeliest explanation the evidence supports, or "unexplained"."""
    kept = [k["event_id"] for k in item["kept_for_resume"]]
    resumes = [s["resumed_after"] for s in item["later_sockets"] if s["resumed_after"] is not None]
    finals = [f["code"] or f["type"] for f in item["finals"]]
    if not finals and kept and resumes and all(min(kept) <= after for after in resumes):
        return "resume skipped a kept final (a higher event id arrived first)"
    if not finals and any("worker_lost" in line for line in item["log_lines"]):
        return "worker_lost went only to the dropped socket (not kept)"
    if "worker_lost" in finals and "chat_response" in finals:
        return "worker_lost live, then the dead worker's kept answer replayed"
    return "unexplained"


def _socket(conn: Connection) -> dict[str, Any]:
    """A socket's story, with the last event ids it received (to spot a resume that skipped one)."""
    story = {k: v for k, v in vars(conn).items() if k not in ("written", "event_ids")}
    return {**story, "last_event_ids": conn.event_ids[-EVENT_ID_TAIL:]}


def _read_logs(log_dir: Path) -> list[str]:
    paths = sorted(log_dir.glob("*.log"))
    return [f"{path.name}: {line}" for path in paths for line in path.read_text(errors="replace").splitlines()]


class Evidence:
    """What a service owner needs to find one chat: its timing, its sockets, nearby chaos, its log lines."""

    def __init__(
        self, journal: Journal, timeline: list[dict[str, Any]], logs: list[str], kept: dict[str, list[dict[str, Any]]]
    ) -> None:
        self.journal = journal
        self.timeline = timeline
        self.logs = logs
        self.kept = kept

    def of(self, client: SoakClient, record: ChatRecord) -> dict[str, Any]:
        conn = _connection(client, record) if record.connection is not None else None
        read = self.journal.read.get(record.message_id)
        around = record.written_at if record.written_at is not None else read.at if read else 0.0
        item = {
            "user_id": client.user_id,
            "message_id": record.message_id,
            "retry_of": record.retry_of,
            "written_at": record.written_at,
            "gateway_read": None if read is None else vars(read),
            "orchestrator_recorded_an_answer": record.message_id in self.journal.answered,
            "streamed_to_client": record.replied,
            "finals": record.finals,
            "kept_for_resume": self.kept.get(record.message_id, []),
            "socket": None if conn is None else _socket(conn),
            "later_sockets": [_socket(c) for c in client.connections[(record.connection or 0) :]],
            "highest_event_id_at_end": client.highest_event_id,
            "chaos_nearby": [e for e in self.timeline if abs(e["at"] - around) <= NEARBY_SECONDS],
            "log_lines": self._lines_about(read),
        }
        return {**item, "cause": _cause(item)}

    def _lines_about(self, read: Read | None) -> list[str]:
        if read is None or not read.trace_id:
            return []
        return [line for line in self.logs if read.trace_id in line][:LOG_LINE_LIMIT]


def table(report: dict[str, Any]) -> str:
    """The human summary of a report."""
    chats, answers, conns = report["chats"], report["answers"], report["connections"]
    rows: list[tuple[str, object]] = [
        ("chats written (ws.send completed)", chats["written"]),
        ("  sends that failed (retried as new chats)", chats["send_failed"]),
        ("sent (a gateway read it)", chats["sent"]),
        ("  of which not journaled (seen only in replies)", chats["sent_but_not_journaled"]),
        ("answered", chats["answered"]),
        *((f"  {name}", n) for name, n in sorted(answers["by_final"].items())),
        ("  on the socket that asked", answers["on_the_socket_that_asked"]),
        ("  on a later socket (copy or replay)", answers["on_a_later_socket"]),
        ("LOST (sent, never answered)", chats["lost"]),
        *((f"  lost: {cause}", n) for cause, n in report["lost_by_cause"].items()),
        ("DUPLICATED (answered more than once)", chats["duplicated"]),
        *((f"  duplicated: {cause}", n) for cause, n in report["duplicated_by_cause"].items()),
        ("written but never read by a gateway", sum(chats["not_sent_by_socket_end"].values())),
        *((f"  socket ended by {end}", n) for end, n in sorted(chats["not_sent_by_socket_end"].items())),
        ("sockets opened", conns["opened"]),
        ("  reconnects", conns["reconnects"]),
        ("  resumes", conns["resumes"]),
        ("  own drops (transport aborted)", conns["own_drops"]),
        ("  failed connection attempts", conns["connect_failures"]),
        ("  restart notices received", conns["restart_notices"]),
        *((f"  ended: {end}", n) for end, n in conns["ends"].items()),
        *((name, n) for name, n in report["other_counts"].items()),
        *((f"restarts: {name}", n) for name, n in report["restarts"].items()),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value:>8}" for label, value in rows)
