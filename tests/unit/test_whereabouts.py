"""The WHEELS WINS frontend's context (location, time zone, date, input mode) reaches the answer."""

from datetime import UTC, datetime

import msgspec
import pytest
from pam_orchestrator.offline import OfflineEngine
from pam_orchestrator.prompt import chat_context
from pam_shared.internal import ChatRequest, chat_request_decoder, chat_request_encoder
from pam_shared.protocol import Chat, ChatContext, SessionData, client_decoder

# 2026-11-24 22:30 UTC is Wednesday 25 November, 08:30 in Brisbane (UTC+10, no daylight saving).
AT = datetime(2026, 11, 24, 22, 30, tzinfo=UTC).timestamp()

SHIPPED_CLIENT = b"""{"type": "chat", "message": "where can I fill up with diesel?", "user_id": "u1",
  "context": {"user_id": "u1", "current_page": "/wheels", "input_mode": "voice",
    "timezone": "Australia/Brisbane", "environment": "production", "timestamp": 1795991400000,
    "current_date": "2026-11-25T08:30:00.000Z",
    "user_location": {"lat": -27.4698, "lng": 153.0251, "latitude": -27.4698, "longitude": 153.0251,
      "city": "Brisbane", "region": "Queensland", "country": "Australia", "timezone": "Australia/Brisbane",
      "accuracy": 50, "timestamp": 1795991400000, "source": "gps"}}}"""


def shipped_context(timestamp: bytes = b"1795991400000") -> ChatContext:
    """The context as the shipped client sends it; its ``timestamp`` is ignored, whatever its shape."""
    chat = client_decoder.decode(SHIPPED_CLIENT.replace(b"1795991400000", timestamp))
    assert isinstance(chat, Chat)
    return chat.context


def request(context: ChatContext, message: str = "x") -> ChatRequest:
    return ChatRequest("r1", "s1", "u1", False, message, context, AT)


async def answer(context: ChatContext, message: str, intent: str) -> list:
    return [piece async for piece in OfflineEngine().stream(request(context, message), intent, [])]


@pytest.mark.parametrize("timestamp", [b"1795991400000", b'"2026-11-25T08:30:00Z"', b"1795991400.5", b"null"])
def test_the_shipped_clients_context_decodes_and_fills_the_region(timestamp):
    context = shipped_context(timestamp)
    assert context.region == "Queensland" and context.current_page == "/wheels"
    assert context.timezone == "Australia/Brisbane" and context.input_mode == "voice"
    assert context.user_location is not None and context.user_location.city == "Brisbane"
    assert context.user_location.coordinates == (-27.4698, 153.0251)
    assert chat_request_decoder.decode(chat_request_encoder.encode(request(context))).context == context


def test_a_region_sent_beside_the_location_wins_and_seed_frames_are_unchanged():
    frame = {"type": "chat", "message": "hi", "context": {"region": "NSW", "user_location": {"region": "Queensland"}}}
    context = client_decoder.decode(msgspec.json.encode(frame)).context
    assert context.region == "NSW" and context.user_location.region == "Queensland"
    seed = b'{"type":"chat","message":"hi","context":{"region":"NSW","current_page":"/x","session_data":{}}}'
    assert client_decoder.decode(seed).context == ChatContext(
        region="NSW", current_page="/x", session_data=SessionData()
    )


def test_location_time_and_voice_reach_the_prompt():
    prompt = chat_context(request(shipped_context()), "fuel")
    assert "Brisbane, Queensland, Australia (-27.4698, 153.0251)" in prompt
    assert "Wednesday 25 November 2026, 08:30 (Australia/Brisbane)" in prompt
    assert "speaking, not typing" in prompt


def test_without_a_time_zone_the_devices_date_is_given():
    prompt = chat_context(request(ChatContext(current_date="2026-11-25", region="NSW")), "general")
    assert "today's date as 2026-11-25" in prompt and "local time" not in prompt
    unknown_zone = chat_context(request(ChatContext(timezone="Mars/Olympus_Mons")), "general")
    assert "local time" not in unknown_zone


def test_coordinates_alone_still_place_the_user():
    context = msgspec.json.decode(b'{"user_location": {"latitude": -12.46, "longitude": 130.84}}', type=ChatContext)
    assert "coordinates -12.4600, 130.8400" in chat_context(request(context), "trip")


async def test_offline_fuel_weather_and_trip_answers_name_the_city():
    context = shipped_context()
    for intent in ("fuel", "weather", "trip"):
        assert "Brisbane, Queensland" in "".join(await answer(context, "diesel", intent)), intent
    assert "for Wednesday 25 November" in "".join(await answer(context, "rain tomorrow?", "weather"))


async def test_an_offline_expense_is_dated_with_the_users_own_day():
    pieces = await answer(shipped_context(), "I spent $40 on diesel", "expense")
    assert pieces[-1][0].data["date"] == "2026-11-25"  # still the 24th in UTC
