import msgspec
import pytest
from pam_shared.protocol import Chat, ChatChunk, Ping, client_decoder, encoder, server_decoder

SEED_MESSAGE = b"""{
  "type": "chat", "message": "Track $20 for fuel", "user_id": "u1",
  "context": {"region": "NSW", "current_page": "/expenses",
              "session_data": {"recent_intents": ["fuel"], "intent_counts": {"fuel": 2},
                               "last_activity": "2026-11-25T10:00:00.000Z",
                               "session_start": "2026-11-25T09:00:00.000Z"}}}"""


def test_the_seed_outgoing_message_decodes():
    chat = client_decoder.decode(SEED_MESSAGE)
    assert isinstance(chat, Chat) and chat.context.region == "NSW"
    assert chat.context.session_data.intent_counts == {"fuel": 2}


def test_context_is_optional_and_unknown_fields_are_ignored():
    chat = client_decoder.decode(b'{"type": "chat", "message": "hi", "extra": 1}')
    assert chat.context.current_page == "" and chat.user_id is None
    assert isinstance(client_decoder.decode(b'{"type": "ping"}'), Ping)


@pytest.mark.parametrize(
    "frame", [b'{"type": "nope"}', b'{"type": "chat"}', b'{"type": "chat", "message": 1}', b"[]", b"{"]
)
def test_bad_frames_do_not_decode(frame):
    with pytest.raises(msgspec.DecodeError):
        client_decoder.decode(frame)


def test_server_frames_round_trip_with_their_type_tag():
    chunk = ChatChunk(message_id="m", seq=0, delta="Hi", reply_to="c1")
    wire = encoder.encode(chunk)
    assert wire.startswith(b'{"type":"chat_chunk"')
    assert server_decoder.decode(wire) == chunk
