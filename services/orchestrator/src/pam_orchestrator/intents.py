"""Fast, local intent classification for the platform's domains.

A weighted keyword match: cheap enough to run on every message before any LLM
call, and good enough to route, shape the prompt and count topics.
"""

from __future__ import annotations

import re

INTENTS: dict[str, tuple[str, ...]] = {
    "expense": ("expense", "spent", "spend", "paid", "cost", "receipt", "bought", "purchase", "bill"),
    "budget": ("budget", "afford", "allowance", "limit", "saving", "savings", "overspend"),
    "income": ("income", "earn", "earned", "salary", "paycheck", "revenue", "side hustle", "got paid"),
    "trip": ("trip", "route", "drive", "road", "itinerary", "destination", "miles", "km", "directions"),
    "campground": ("campground", "camp", "campsite", "rv park", "caravan park", "free camping", "site"),
    "fuel": ("fuel", "gas", "diesel", "petrol", "fill up", "mpg", "gas station", "servo"),
    "weather": ("weather", "rain", "storm", "forecast", "temperature", "wind", "snow", "heat"),
    "maintenance": ("maintenance", "service", "oil change", "tyre", "tire", "brake", "repair", "mechanic"),
    "social": ("friend", "group", "meetup", "community", "share", "post", "travellers", "travelers"),
}
GENERAL = "general"

_PATTERNS = {
    intent: re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")s?\b", re.IGNORECASE)
    for intent, words in INTENTS.items()
}


def classify(message: str) -> str:
    """The intent with the most keyword hits; ties go to the first listed; none means general."""
    best, best_hits = GENERAL, 0
    for intent, pattern in _PATTERNS.items():
        hits = len(pattern.findall(message))
        if hits > best_hits:
            best, best_hits = intent, hits
    return best
