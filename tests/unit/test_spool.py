"""The journal's disk spool, and the journal itself against a JetStream that refuses for a while."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from pam_shared import journal as journal_module
from pam_shared.journal import Backoff, Journal
from pam_shared.spool import SUFFIX, Record, Spool, SpoolFile
from pam_shared.subjects import Subjects
from prometheus_client import REGISTRY
from support.persistence import until as wait_until
from support.persistence import user_message


def records(n: int, start: int = 0) -> list[Record]:
    return [
        Record("pam.events.user_message", {"Nats-Msg-Id": f"e{i}"}, f"data {i}".encode())
        for i in range(start, start + n)
    ]


def drain(spool: Spool, limit: int = 3) -> list[Record]:
    taken = []
    while batch := spool.read(limit):
        taken += batch
        spool.commit()
    return taken


def test_records_come_back_in_order_and_the_file_empties(tmp_path):
    spool = Spool(tmp_path, "gw")
    spool.append(records(5))
    spool.append(records(2, start=5))
    assert spool.count == 7
    assert drain(spool) == records(7)
    assert spool.count == 0
    spool.close()
    assert list(tmp_path.iterdir()) == []


def test_a_closed_spool_is_replayed_by_the_next_process_once(tmp_path):
    first = Spool(tmp_path, "gw-a")
    first.append(records(4))
    first.close()
    second, third = Spool(tmp_path, "gw-b"), Spool(tmp_path, "gw-c")
    assert second.claim_leftovers() == 4
    assert third.claim_leftovers() == 0  # the second holds the file's lock
    assert drain(second) == records(4)
    assert list(tmp_path.glob(f"*{SUFFIX}")) == []


def test_a_live_process_file_is_never_claimed(tmp_path):
    live = Spool(tmp_path, "gw-a")
    live.append(records(2))
    assert Spool(tmp_path, "gw-b").claim_leftovers() == 0
    live.close()


def test_a_torn_last_record_is_ignored(tmp_path):
    spool = Spool(tmp_path, "gw-a")
    spool.append(records(3))
    spool.close()
    (path,) = tmp_path.glob(f"*{SUFFIX}")
    with open(path, "ab") as f:
        f.write(b"\x00\x00\x01\x00partial")  # a crash in the middle of an append
    claimed = SpoolFile.claim(path)
    assert claimed is not None and claimed.records == 3
    assert claimed.read(10)[0] == records(3)
    claimed.close(remove=False)


def test_a_file_removed_while_waiting_for_its_lock_is_not_claimed(tmp_path):
    spool = Spool(tmp_path, "gw-a")
    spool.append(records(1))
    spool.close()
    (path,) = tmp_path.glob(f"*{SUFFIX}")
    fd = os.open(path, os.O_RDONLY)
    os.unlink(path)
    os.close(fd)
    assert SpoolFile.claim(path) is None


def test_backoff_doubles_up_to_its_cap():
    backoff = Backoff(0.1, 0.5)
    assert [backoff.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next() == 0.1


class FlakyJetStream:
    """Refuses every publish until ``up`` is set; remembers what it took, by message id."""

    def __init__(self) -> None:
        self.up = asyncio.Event()
        self.taken: list[str] = []
        self.refused = 0

    def jetstream(self) -> FlakyJetStream:
        return self

    async def add_stream(self, config: object) -> None:
        pass

    async def stream_info(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(cluster=None)  # a single server

    async def publish(self, subject: str, data: bytes, timeout: float, headers: dict[str, str]) -> None:
        if not self.up.is_set():
            self.refused += 1
            raise TimeoutError("nats: timeout")
        self.taken.append(headers["Nats-Msg-Id"])


async def started(nats: FlakyJetStream, spool_dir: Path, prefix: str, max_pending: int) -> Journal:
    journal = Journal(nats, Subjects("t"), Spool(spool_dir, prefix), max_pending)  # type: ignore[arg-type]
    await journal.start()
    return journal


async def until(condition: Callable[[], bool]) -> None:
    async def check() -> bool:
        return condition()

    await wait_until(check, bool)


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(journal_module, "BACKOFF_SECONDS", (0.01, 0.05))
    monkeypatch.setattr(journal_module, "CLOSE_TIMEOUT_SECONDS", 0.2)


async def test_an_outage_longer_than_any_retry_loses_nothing_and_spools_what_does_not_fit(tmp_path):
    nats = FlakyJetStream()
    journal = await started(nats, tmp_path, "gw", max_pending=10)
    events = [user_message(content=f"m{i}") for i in range(50)]
    for event in events:
        journal.record(event)
    await until(lambda: journal.spool.count == 40)
    assert REGISTRY.get_sample_value("pam_journal_pending_events") == 10
    assert REGISTRY.get_sample_value("pam_journal_spooled_events") == 40
    await until(lambda: nats.refused > 20 * 10)  # far more rounds than the old journal's five retries
    nats.up.set()
    await until(lambda: len(set(nats.taken)) == 50 and journal.spool.count == 0)
    assert sorted(set(nats.taken)) == sorted(e.event_id for e in events)
    await journal.close()
    assert list(tmp_path.glob(f"*{SUFFIX}")) == []


async def test_events_pending_at_close_are_published_by_the_next_start(tmp_path):
    nats = FlakyJetStream()
    journal = await started(nats, tmp_path, "gw-a", max_pending=100)
    events = [user_message(content=f"m{i}") for i in range(7)]
    for event in events:
        journal.record(event)
    await journal.close()
    assert nats.taken == [] and len(list(tmp_path.glob(f"*{SUFFIX}"))) == 1

    nats.up.set()
    restarted = await started(nats, tmp_path, "gw-b", max_pending=100)
    await until(lambda: len(nats.taken) == 7)
    assert sorted(nats.taken) == sorted(e.event_id for e in events)
    await restarted.close()
    assert list(tmp_path.glob(f"*{SUFFIX}")) == []
