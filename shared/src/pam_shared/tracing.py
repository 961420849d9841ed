"""W3C trace context for a chat: started at the gateway, carried in NATS headers.

The traceparent of the chat being handled lives in a context variable, so every log
line and every outgoing hop made while handling it carries the trace without it being
passed around by hand.
"""

from __future__ import annotations

import contextvars
import secrets

TRACEPARENT = "traceparent"

current_traceparent: contextvars.ContextVar[str | None] = contextvars.ContextVar("traceparent", default=None)


def new_traceparent() -> str:
    """``00-<trace id>-<span id>-01`` for a new, sampled trace."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child_traceparent(parent: str) -> str:
    """The same trace, a new span: for the next hop (the LLM call, a persisted event)."""
    trace_id = trace_id_of(parent)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01" if trace_id else new_traceparent()


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a well-formed ``traceparent``, else None."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32:
        return None
    return parts[1]
