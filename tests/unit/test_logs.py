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


def test_api_keys_and_key_parameters_are_scrubbed():
    log, out = capture(production=False)
    log.info("calling https://models.example/v1?key=AIzaSyExample123 with sk-proj-abcdef123456")
    log.info("task-runner-12345678 started")  # not a key: no word boundary before "sk-"
    assert "AIzaSyExample123" not in out.getvalue() and "abcdef123456" not in out.getvalue()
    assert "key=***" in out.getvalue() and "task-runner-12345678" in out.getvalue()


def raise_with_token() -> None:
    raise ValueError("refused Bearer abc.def.ghi for sk-test-not-a-real-key")


def test_tracebacks_are_scrubbed_in_both_formats():
    for production in (False, True):
        log, out = capture(production)
        try:
            raise_with_token()
        except ValueError:
            log.exception("failed")
        assert "ValueError" in out.getvalue()
        assert "abc.def.ghi" not in out.getvalue() and "sk-test-not-a-real-key" not in out.getvalue()


def test_websocket_frames_stay_out_of_debug_output():
    """uvicorn hands ``uvicorn.error`` to websockets, which logs every frame at debug."""
    logs.setup_logging("gateway", "gw-1", "debug", production=False)
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)
    logging.getLogger("pam.test").debug("ours")
    logging.getLogger("uvicorn.error").debug('< TEXT \'{"message": "secret words"}\'')
    logging.getLogger("websockets.server").debug('> TEXT \'{"delta": "secret words"}\'')
    assert "ours" in stream.getvalue() and "secret words" not in stream.getvalue()
