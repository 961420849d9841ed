"""The export as one JSON document (``pam_shared.read_api.Export``) written a page at a time.

Each method returns the bytes that come next: the head, each page's conversations, the
turn to analytics, each page's analytics rows, the end.  Nothing but the page in hand is
held, so the document can be any size.  A conversation that goes on from one page to the
next (the same id) stays one object in the document.
"""

from __future__ import annotations

import msgspec
from pam_shared.read_api import AnalyticsRecord, ExportedConversation, ExportHead

_encoder = msgspec.json.Encoder()


class ExportDocument:
    def __init__(self) -> None:
        self._open: str | None = None
        """The conversation whose messages are being written."""
        self._messages = False
        """Whether the open conversation has a message written."""
        self._rows = False
        """Whether an analytics row has been written."""

    def head(self, head: ExportHead) -> bytes:
        return _encoder.encode(head)[:-1] + b',"conversations":['

    def conversations(self, parts: list[ExportedConversation]) -> bytes:
        out = bytearray()
        for part in parts:
            if part.id != self._open:
                if self._open is not None:
                    out += b"]},"
                # the conversation's own fields, then its messages' list left open: {...,"messages":[
                out += _encoder.encode(msgspec.structs.replace(part, messages=[]))[:-2]
                self._open, self._messages = part.id, False
            for message in part.messages:
                if self._messages:
                    out += b","
                _encoder.encode_into(message, out, -1)
                self._messages = True
        return bytes(out)

    def between(self) -> bytes:
        """The end of the conversations, the start of the analytics rows."""
        return (b"]}" if self._open is not None else b"") + b'],"analytics":['

    def analytics(self, rows: list[AnalyticsRecord]) -> bytes:
        out = bytearray()
        for row in rows:
            if self._rows:
                out += b","
            _encoder.encode_into(row, out, -1)
            self._rows = True
        return bytes(out)

    def end(self) -> bytes:
        return b"]}"
