"""Events the journal could not hold in memory, kept on local disk until they are published.

Each process appends to a file of its own, held under an exclusive ``flock`` for as long
as the process has it open, so two processes never write one file.  A file left by an
earlier process (instance ids are random per start, so it has another name; its lock died
with it) is claimed, under the same lock, by the next start of the same service kind and
replayed; a live process's file cannot be claimed.  A file closed part-way through its
replay is replayed whole next time: the events' ids make the repeats harmless.  Records are length-prefixed and each
append is fsynced; a torn last record (a crash mid-append) is ignored when read.

Every method blocks on the disk: the journal calls them through ``asyncio.to_thread``.
A lock serializes them, since the journal's writer and spiller use one spool at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import uuid
from pathlib import Path

import msgspec

log = logging.getLogger("pam.journal.spool")

SUFFIX = ".spool"
_LENGTH = struct.Struct(">I")


class Record(msgspec.Struct, array_like=True, frozen=True):
    """One encoded event, exactly as it is published."""

    subject: str
    headers: dict[str, str]
    data: bytes


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Record)


def encode(records: list[Record]) -> bytes:
    return b"".join(_LENGTH.pack(len(blob)) + blob for blob in map(_encoder.encode, records))


def read_records(fd: int, offset: int, limit: int | None = None) -> tuple[list[Record], int]:
    """Whole records from ``offset`` on (at most ``limit``), and the offset just past them;
    read one at a time, so a large file never has to fit in memory."""
    records: list[Record] = []
    while limit is None or len(records) < limit:
        record, end = _read_one(fd, offset)
        if record is None:
            break
        records.append(record)
        offset = end
    return records, offset


def count_records(fd: int) -> int:
    """How many whole records a file holds (only their lengths are read)."""
    count, offset, size = 0, 0, os.fstat(fd).st_size
    while len(prefix := os.pread(fd, _LENGTH.size, offset)) == _LENGTH.size:
        offset += _LENGTH.size + _LENGTH.unpack(prefix)[0]
        if offset > size:
            break
        count += 1
    return count


def _read_one(fd: int, offset: int) -> tuple[Record | None, int]:
    prefix = os.pread(fd, _LENGTH.size, offset)
    if len(prefix) < _LENGTH.size:
        return None, offset
    (size,) = _LENGTH.unpack(prefix)
    blob = os.pread(fd, size, offset + _LENGTH.size)
    if len(blob) < size:
        return None, offset  # a torn append: nothing readable follows it
    try:
        return _decoder.decode(blob), offset + _LENGTH.size + size
    except msgspec.DecodeError:
        return None, offset


class SpoolFile:
    """One locked file, consumed from the front while the journal publishes its records."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.committed = 0
        """Bytes at the front already published."""
        self.records = count_records(fd)
        """Records after ``committed``."""

    @classmethod
    def create(cls, directory: Path, prefix: str) -> SpoolFile:
        """A new file, locked before it gets the name that others look for."""
        directory.mkdir(parents=True, exist_ok=True)
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        hidden = directory / f".{name}.tmp"
        fd = os.open(hidden, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        path = directory / f"{name}{SUFFIX}"
        os.rename(hidden, path)
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)  # the name survives a power cut too
        finally:
            os.close(directory_fd)
        return cls(path, fd)

    @classmethod
    def claim(cls, path: Path) -> SpoolFile | None:
        """Lock a file no live process holds; None when someone does, or it is gone."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(path).st_ino != os.fstat(fd).st_ino:
                raise FileNotFoundError(path)  # replayed and removed by another process meanwhile
        except OSError:
            os.close(fd)
            return None
        return cls(path, fd)

    @property
    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def append(self, records: list[Record]) -> None:
        """Write and fsync ``records``; a failed write is cut off, so it tears nothing after it."""
        size = self.size
        try:
            _write_all(self.fd, encode(records))
            os.fsync(self.fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, size)
            raise
        self.records += len(records)

    def read(self, limit: int) -> tuple[list[Record], int]:
        """Up to ``limit`` records after the committed front, and the offset just past them."""
        return read_records(self.fd, self.committed, limit)

    def close(self, remove: bool) -> None:
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        os.close(self.fd)


def _write_all(fd: int, blob: bytes) -> None:
    view = memoryview(blob)
    while view:
        view = view[os.write(fd, view) :]


class Spool:
    """The spool of one process: files left by earlier runs first, then its own."""

    def __init__(self, directory: Path, prefix: str) -> None:
        self.directory = directory
        self.prefix = prefix
        self._own: SpoolFile | None = None
        self._claimed: list[SpoolFile] = []
        self._reading: tuple[SpoolFile, int, int] | None = None
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        """Records on disk not yet published."""
        files = [*self._claimed, *([self._own] if self._own else [])]
        return sum(f.records for f in files)

    @property
    def where(self) -> str:
        return str(self._own.path if self._own else self.directory)

    def claim_leftovers(self) -> int:
        """Take over the files earlier runs left behind; returns how many records they hold."""
        with self._lock:
            paths = sorted(self.directory.glob(f"*{SUFFIX}")) if self.directory.is_dir() else []
            mine = {f.path for f in self._claimed} | ({self._own.path} if self._own else set())
            for path in paths:
                if path not in mine and (claimed := SpoolFile.claim(path)) is not None:
                    self._claimed.append(claimed)
            return sum(f.records for f in self._claimed)

    def append(self, records: list[Record]) -> None:
        with self._lock:
            if self._own is None:
                self._own = SpoolFile.create(self.directory, self.prefix)
            self._own.append(records)

    def read(self, limit: int) -> list[Record]:
        """The next records to publish; ``commit`` once they are acknowledged."""
        with self._lock:
            for spool_file in [*self._claimed, *([self._own] if self._own else [])]:
                records, end = spool_file.read(limit)
                if records:
                    self._reading = (spool_file, end, len(records))
                    return records
                if spool_file.records and spool_file is not self._own:
                    self._set_aside(spool_file)
            return []

    def _set_aside(self, spool_file: SpoolFile) -> None:
        """A left file whose rest cannot be read: keep it for a human, stop counting it."""
        aside = spool_file.path.with_suffix(".unreadable")
        log.error("spool file %s has %d unreadable records; moved to %s", spool_file.path, spool_file.records, aside)
        os.rename(spool_file.path, aside)
        self._claimed.remove(spool_file)
        spool_file.close(remove=False)

    def commit(self) -> None:
        """The records last read are published: drop them (and files left with nothing)."""
        with self._lock:
            if self._reading is None:
                return
            spool_file, end, count = self._reading
            self._reading = None
            spool_file.committed, spool_file.records = end, spool_file.records - count
            if spool_file.committed < spool_file.size:
                return
            if spool_file is self._own:
                os.ftruncate(spool_file.fd, 0)
                spool_file.committed = 0
            else:
                self._claimed.remove(spool_file)
                spool_file.close(remove=True)

    def close(self) -> None:
        """Release every file; those still holding records stay for the next start."""
        with self._lock:
            for spool_file in [*self._claimed, *([self._own] if self._own else [])]:
                spool_file.close(remove=spool_file.records == 0)
            self._claimed, self._own, self._reading = [], None, None
