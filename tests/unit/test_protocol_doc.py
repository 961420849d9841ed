from pathlib import Path

from pam_shared.protocol_doc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_docs_protocol_md_matches_the_types():
    assert DOC.read_text(encoding="utf-8") == render(), "docs/protocol.md is stale: run `make docs`"


def test_every_frame_type_is_documented():
    text = render()
    for tag in ("chat", "ping", "connection", "chat_chunk", "chat_response", "ui_actions", "action_response", "error"):
        assert f"### `{tag}`" in text
