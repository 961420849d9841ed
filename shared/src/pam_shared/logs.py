"""One logging setup for every service.

Development prints the seed's human format with its markers; production prints
JSON lines.  Tokens and API keys are scrubbed from every line and traceback, including
uvicorn's own.  That is the safety net: message texts and locations are never logged at all,
and the libraries that would print them at debug level (every WebSocket frame, and the
handshake's headers) are held at info.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

from pam_shared.tracing import current_traceparent, trace_id_of

CONNECTION = "🔌"
OUTGOING = "📤"
INCOMING = "📨"
OK = "✅"
ERROR = "❌"
RECONNECT = "🔄"

CONTEXT_FIELDS = ("session_id", "user_id", "message_id", "trace_id", "event")
EVENTS = {
    CONNECTION: "connection",
    OUTGOING: "outgoing",
    INCOMING: "incoming",
    OK: "ok",
    ERROR: "error",
    RECONNECT: "reconnect",
}
_TOKEN = re.compile(
    r"((?:token|key)=)[^&\s\"']+|(Bearer\s+)[A-Za-z0-9._~+/=-]+|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
    r"|\bsk-[A-Za-z0-9_-]{8,}"
)
CHATTY = ("websockets", "uvicorn.error")
"""Loggers whose debug lines are every WebSocket frame (a chat's text, its location) and the
handshake's headers: never below info.  uvicorn hands ``uvicorn.error`` to websockets."""


def redact(text: str) -> str:
    """Replace anything that looks like a token or an API key with ``***``."""
    return _TOKEN.sub(lambda m: (m.group(1) or m.group(2) or "") + "***", text)


class _Redacting(logging.Filter):
    """Scrubs tokens, and names the trace and event each line belongs to."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if not hasattr(record, "trace_id") and (trace_id := trace_id_of(current_traceparent.get())):
            record.trace_id = trace_id
        if not hasattr(record, "event") and (marker := getattr(record, "marker", None)) in EVENTS:
            record.event = EVENTS[marker]
        return True


class _Verbosity(logging.Filter):
    """The configured level, plus debug lines for the users and sessions being debugged."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level
        self.targets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.level:
            return True
        return getattr(record, "user_id", None) in self.targets or getattr(record, "session_id", None) in self.targets


_verbosity = _Verbosity(logging.INFO)


def debug_for(target: str, enabled: bool) -> None:
    """Turn debug lines on or off for one user id or session id, at run time."""
    if enabled:
        _verbosity.targets.add(target)
    else:
        _verbosity.targets.discard(target)
    root_level = logging.DEBUG if _verbosity.targets else _verbosity.level
    logging.getLogger().setLevel(min(root_level, _verbosity.level))


class HumanFormatter(logging.Formatter):
    """``12:00:01 🔌 gateway socket opened session_id=... user_id=...``"""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        marker = getattr(record, "marker", None) or (ERROR if record.levelno >= logging.ERROR else "·")
        fields = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT_FIELDS if k != "event" and hasattr(record, k))
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{stamp} {marker} {self.service} {record.getMessage()}"
        line = f"{line} {fields}" if fields else line
        if record.exc_info:
            line = f"{line}\n{redact(self.formatException(record.exc_info))}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def __init__(self, service: str, instance: str) -> None:
        super().__init__()
        self.service, self.instance = service, instance

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "instance": self.instance,
            "message": record.getMessage(),
            "logger": record.name,
        }
        entry.update({k: getattr(record, k) for k in CONTEXT_FIELDS if hasattr(record, k)})
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup_logging(service: str, instance: str, level: str, production: bool) -> None:
    """Route every logger (ours and the libraries') through one redacting handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service, instance) if production else HumanFormatter(service))
    handler.addFilter(_Redacting())
    _verbosity.level = logging.getLevelName(level.upper())
    handler.addFilter(_verbosity)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_verbosity.level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "nats", "websockets"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    for name in CHATTY:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
