"""Context enrichment: turn the client's context into the system prompt and message list."""

from __future__ import annotations

from collections import Counter

from pam_shared.internal import ChatRequest

PERSONA = (
    "You are PAM, the travel-and-money assistant of the WHEELS WINS platform for people who live "
    "and travel on the road. Be brief, practical and friendly. Use the tools when the user wants "
    "to go to a page, record an expense or change a budget."
)


def system_prompt(request: ChatRequest, intent: str) -> str:
    """The persona plus what we know about where the user is and what they care about."""
    context = request.context
    lines = [PERSONA]
    if context.region:
        lines.append(f"The user is in {context.region}: use its currency, units and local knowledge.")
    if context.current_page:
        lines.append(f"They are looking at the {context.current_page} page of the app.")
    lines.append(f"This message looks like a {intent} question.")
    session = context.session_data
    if session.recent_intents:
        lines.append("Recent topics: " + ", ".join(session.recent_intents[-10:]) + ".")
    if session.intent_counts:
        top = Counter(session.intent_counts).most_common(3)
        lines.append("They ask most about: " + ", ".join(f"{k} ({v})" for k, v in top) + ".")
    return "\n".join(lines)


def messages(request: ChatRequest, intent: str, history: list[dict[str, str]]) -> list[dict[str, str]]:
    """System prompt, earlier turns of the conversation, then the new message."""
    return [
        {"role": "system", "content": system_prompt(request, intent)},
        *history,
        {"role": "user", "content": request.message},
    ]
