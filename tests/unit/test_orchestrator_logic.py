"""Intent classification, the offline engine and tool calls: pure functions, no network."""

import asyncio

import pytest
from pam_orchestrator.intents import classify
from pam_orchestrator.offline import OfflineEngine, find_amount
from pam_orchestrator.prompt import chat_context
from pam_orchestrator.tools import describe, to_action
from pam_shared.internal import ChatRequest
from pam_shared.protocol import ChatContext, SessionData, UiAction


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        ("I spent 40 dollars on dinner", "expense"),
        ("Can I afford a new awning this month with my budget?", "budget"),
        ("I got paid for my side hustle", "income"),
        ("Plan a route from Perth to Broome", "trip"),
        ("Any free campsites near Byron?", "campground"),
        ("Where is the cheapest diesel?", "fuel"),
        ("Is a storm coming tomorrow?", "weather"),
        ("When is my next oil change due?", "maintenance"),
        ("Any travellers meetup in Alice Springs?", "social"),
        ("Hello there", "general"),
    ],
)
def test_intents(message, intent):
    assert classify(message) == intent


@pytest.mark.parametrize(("text", "amount"), [("spent $42.50", 42.5), ("paid 7 for coffee", 7.0), ("nothing", None)])
def test_amounts(text, amount):
    assert find_amount(text) == amount


def request(message: str, demo: bool = False, **context) -> ChatRequest:
    return ChatRequest("r1", "s1", "u1", demo, message, ChatContext(**context), 0.0)


async def collect(engine: OfflineEngine, req: ChatRequest, intent: str) -> list:
    return [piece async for piece in engine.stream(req, intent, [])]


def test_offline_expense_answer_streams_words_and_a_create_action():
    pieces = asyncio.run(collect(OfflineEngine(), request("I spent $12 on bait", demo=True), "expense"))
    words, action = pieces[:-1], pieces[-1]
    assert len(words) > 5 and "demo mode" in "".join(words)
    assert action == [
        UiAction(type="create", target="expense", data={"amount": 12.0, "description": "I spent $12 on bait"})
    ]


def test_offline_answers_mention_the_region():
    pieces = asyncio.run(collect(OfflineEngine(), request("fuel prices?", region="Tasmania"), "fuel"))
    assert "Tasmania" in "".join(pieces)


def test_system_prompt_carries_region_page_and_habits():
    req = request(
        "x",
        region="Victoria",
        current_page="/budget",
        session_data=SessionData(recent_intents=["fuel", "budget"], intent_counts={"budget": 5, "fuel": 1}),
    )
    prompt = chat_context(req, "budget")
    assert "Victoria" in prompt and "/budget" in prompt and "budget (5)" in prompt and "fuel, budget" in prompt


def test_tool_calls_map_to_ui_actions():
    assert to_action("navigate", '{"page": "/trips"}') == UiAction(type="navigate", target="/trips")
    assert to_action("update_budget", '{"category": "food", "amount": 300}').type == "update"
    assert to_action("navigate", "{not json") is None
    assert to_action("launch_rocket", "{}") is None
    assert describe([UiAction(type="navigate", target="/trips")]) == "Opening /trips for you."
