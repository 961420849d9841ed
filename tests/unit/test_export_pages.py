"""Persistence's export pages: cursors that name where a page ended, and the bounds a page fills to."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from pam_persistence.export import Position, Taken, parse_position
from pam_persistence.reads import BadCursor, cursor
from pam_shared.read_api import ExportedMessage

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def message(n: int, content: str = "hi") -> ExportedMessage:
    return ExportedMessage(f"m{n}", "user", content, None, T0 + timedelta(seconds=n))


def test_a_cursor_names_the_conversation_and_the_last_message_served():
    conversation = uuid.uuid4()
    head = cursor(T0, str(conversation))
    assert parse_position(head) == Position(T0, conversation)
    at = T0 + timedelta(microseconds=7)
    assert parse_position(f"{head}.{cursor(at, 'id.with.dots')}") == Position(T0, conversation, at, "id.with.dots")
    assert parse_position(None) is None


SOME = "6f1c2d3e-0000-4000-8000-000000000001"


@pytest.mark.parametrize("bad", ["", "x", "12", "12.not-a-uuid", f"12.{SOME}.x.m", f"12.{SOME}.13."])
def test_a_cursor_persistence_did_not_make_is_refused(bad):
    with pytest.raises(BadCursor):
        parse_position(bad)


def test_a_page_takes_messages_until_its_rows_or_bytes_run_out_but_always_one():
    small, big = message(1), message(2, "x" * 1000)
    size = len(msgspec.json.encode(big)) + len(msgspec.json.encode(small))
    by_bytes = Taken(rows=10, size=size + 10, after=None)
    assert by_bytes.take(big)  # the first always fits
    assert by_bytes.take(small) and not by_bytes.take(big)  # another 1000 would overflow
    alone = Taken(rows=10, size=100, after=None)
    assert alone.take(big) and alone.full and not alone.take(small)  # a message over the bound comes alone
    by_rows = Taken(rows=2, size=10_000, after=None)
    assert by_rows.take(small) and by_rows.take(small) and not by_rows.take(small)
