"""The offline engine: answers without an LLM, for demo sessions and machines with no API key.

It follows the seed's demo mode: context-aware canned answers, and for an expense a
``create`` action carrying the amount it found in the message.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator

from pam_shared.internal import ChatRequest
from pam_shared.protocol import UiAction

from pam_orchestrator import whereabouts
from pam_orchestrator.engine import Piece

_AMOUNT = re.compile(r"(?<![\w.])[$€£]?\s?(\d{1,7}(?:[.,]\d{1,2})?)(?![\w])")

ANSWERS = {
    "expense": "💰 I'd normally record that expense{amount} for you, but I'm in {mode} mode. "
    "I've prepared it so you can save it yourself.",
    "budget": "📊 In {mode} mode I can't read your budget, but a good rule on the road is to "
    "set aside fuel, food and camping first.",
    "income": "💵 I'd normally log that income for you; in {mode} mode I can only note it here.",
    "trip": "🗺️ I'd normally plan that route{where}; in {mode} mode I can suggest checking road "
    "conditions and fuel stops before you set off.",
    "campground": "🏕️ I'd normally find campgrounds{where}; in {mode} mode try the campgrounds page.",
    "fuel": "⛽ I'd normally compare fuel prices{where}; in {mode} mode I can't see live prices.",
    "weather": "🌦️ I'd normally check the forecast{where}{when}; in {mode} mode I have no live weather.",
    "maintenance": "🔧 I'd normally track your vehicle maintenance; in {mode} mode I can remind you "
    "to check tyres, oil and brakes before a long drive.",
    "social": "👋 I'd normally connect you with other travellers{where}; in {mode} mode the social "
    "page is the place to start.",
    "general": "👋 Hi, I'm PAM. I'm in {mode} mode right now, so my answers are limited, but I can "
    "still help you find your way around{where}.",
}


def find_amount(message: str) -> float | None:
    match = _AMOUNT.search(message)
    return float(match.group(1).replace(",", ".")) if match else None


class OfflineEngine:
    name: str = "offline"
    model: str | None = None

    def __init__(self, mode: str = "offline") -> None:
        self.mode = mode

    async def stream(self, request: ChatRequest, intent: str, history: list[dict[str, str]]) -> AsyncGenerator[Piece]:
        mode = "demo" if request.demo else self.mode
        amount = find_amount(request.message) if intent == "expense" else None
        where = whereabouts.place(request.context)
        moment = whereabouts.local_time(request.context, request.received_at)
        text = ANSWERS[intent].format(
            mode=mode,
            amount=f" of {amount:g}" if amount is not None else "",
            where=f" in {where}" if where else "",
            when=f" for {moment:%A} {moment.day} {moment:%B}" if moment else "",
        )
        for word in _words(text):
            yield word
        if intent == "expense":
            yield [UiAction(type="create", target="expense", data=_expense(request, amount))]


def _expense(request: ChatRequest, amount: float | None) -> dict[str, object]:
    """The expense to prepare; dated with the user's own day when we know it (not the server's)."""
    data: dict[str, object] = {"amount": amount, "description": request.message}
    date = whereabouts.local_date(request.context, request.received_at)
    if date:
        data["date"] = date
    return data


def _words(text: str) -> list[str]:
    """Split into word-sized deltas that join back to exactly ``text``."""
    return re.findall(r"\S+\s*", text)
