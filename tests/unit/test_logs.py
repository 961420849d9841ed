import io
import json
import logging

from pam_shared import logs


def capture(production: bool) -> tuple[logging.Logger, io.StringIO]:
    logs.setup_logging("gateway", "gw-1", "info", production)
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)
    return logging.getLogger("pam.test"), stream


def test_tokens_are_scrubbed_from_every_line():
    log, out = capture(production=False)
    log.info('127.0.0.1 - "WebSocket /ws/u1?token=eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl" [accepted]')
    log.info("Authorization: Bearer abc.def.ghi")
    assert "eyJ" not in out.getvalue() and "abc.def.ghi" not in out.getvalue()
    assert "token=***" in out.getvalue()


def test_development_lines_carry_the_seed_markers():
    log, out = capture(production=False)
    log.info("socket opened", extra={"marker": logs.CONNECTION, "session_id": "s1"})
    assert "🔌 gateway socket opened session_id=s1" in out.getvalue()


def test_production_lines_are_json():
    log, out = capture(production=True)
    log.warning("slow", extra={"session_id": "s1", "user_id": "u1"})
    entry = json.loads(out.getvalue())
    assert entry["level"] == "warning" and entry["service"] == "gateway" and entry["instance"] == "gw-1"
    assert entry["session_id"] == "s1" and entry["user_id"] == "u1" and entry["timestamp"].endswith("Z")
