"""The export document written page by page is one valid ``Export``: a conversation split over
pages stays one object, and empty pages leave no stray commas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from pam_gateway.export_document import ExportDocument
from pam_shared.budget import PeriodUse, Usage
from pam_shared.read_api import (
    AnalyticsRecord,
    Export,
    ExportedConversation,
    ExportedMessage,
    ExportHead,
    PrivacyRecord,
)
from pam_shared.timers import Timer

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def message(n: int, content: str = "hi") -> ExportedMessage:
    return ExportedMessage(f"m{n}", "user", f"{content} {n}", None, T0 + timedelta(seconds=n), session_id="s1")


def part(conversation: str, *messages: ExportedMessage) -> ExportedConversation:
    return ExportedConversation(conversation, T0, T0 + timedelta(hours=1), "Queensland", list(messages))


def analytics_row(n: int) -> AnalyticsRecord:
    return AnalyticsRecord(
        f"a{n}", "s1", f"m{n}", "general", "llm", "gpt", "o1", None, 12.5, None, 3, 4, None, None, T0
    )


HEAD = ExportHead(
    user_id="ann",
    exported_at=T0,
    first_seen_at=T0,
    last_seen_at=T0,
    privacy=PrivacyRecord(True, False, T0),
    usage=Usage(PeriodUse(5, None, "2026-05-02T00:00:00Z"), PeriodUse(5, 100, "2026-06-01T00:00:00Z")),
    timers=[Timer("t" * 32, "ann", "timer", "tea", "2026-05-01T09:00:00Z", "2026-05-01T08:00:00Z")],
)


def written(
    conversation_pages: list[list[ExportedConversation]], analytics_pages: list[list[AnalyticsRecord]]
) -> bytes:
    document = ExportDocument()
    out = document.head(HEAD)
    for page in conversation_pages:
        out += document.conversations(page)
    out += document.between()
    for rows in analytics_pages:
        out += document.analytics(rows)
    return out + document.end()


def test_a_conversation_split_over_pages_is_one_object_in_order():
    pages = [
        [part("c1", message(1), message(2))],
        [part("c1", message(3)), part("c2"), part("c3", message(4))],
        [part("c3", message(5, 'with "quotes", é and \n'))],
        [],
    ]
    out = written(pages, [[analytics_row(1), analytics_row(2)], [], [analytics_row(3)]])
    exported = msgspec.json.decode(out, type=Export)
    assert ExportHead(**{name: getattr(exported, name) for name in ExportHead.__struct_fields__}) == HEAD
    assert [(c.id, [m.id for m in c.messages]) for c in exported.conversations] == [
        ("c1", ["m1", "m2", "m3"]),
        ("c2", []),
        ("c3", ["m4", "m5"]),
    ]
    assert exported.conversations[2].messages[1] == message(5, 'with "quotes", é and \n')
    assert [r.id for r in exported.analytics] == ["a1", "a2", "a3"]


def test_an_export_with_nothing_stored_is_valid_and_empty():
    exported = msgspec.json.decode(written([[]], [[]]), type=Export)
    assert exported.conversations == [] and exported.analytics == [] and exported.user_id == "ann"
