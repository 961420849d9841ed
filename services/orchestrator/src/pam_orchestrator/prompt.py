"""Context enrichment: turn the client's context into the message list the model reads.

Laid out for the providers' prefix caches (exact prefix match): what is the same on every
chat (the persona, and the tool definitions the engine sends) comes first and byte-identical,
then the conversation's earlier turns, then this chat's context, then its message.
"""

from __future__ import annotations

from collections import Counter

from pam_shared.internal import ChatRequest

from pam_orchestrator import whereabouts

PERSONA = (
    "You are PAM, the travel-and-money assistant of the WHEELS WINS platform for people who live "
    "and travel on the road. Be brief, practical and friendly. Use the tools when the user wants "
    "to go to a page, record an expense or change a budget."
)


def chat_context(request: ChatRequest, intent: str) -> str:
    """What we know, for this chat, about where the user is and what they care about."""
    context = request.context
    lines = ["About this message (from the app, not written by the user):", *_whereabouts(request)]
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


def _whereabouts(request: ChatRequest) -> list[str]:
    """Where the user is, their local time and how they talk to us, as far as the client said."""
    context, lines = request.context, []
    where, point = whereabouts.place(context), whereabouts.coordinates(context)
    if where:
        at = f" ({point})" if point else ""
        lines.append(f"The user is in {where}{at}: use its currency, units and local knowledge.")
    elif point:
        lines.append(f"The user is at coordinates {point}: use the local currency, units and knowledge.")
    moment = whereabouts.local_time(context, request.received_at)
    if moment is not None:
        lines.append(f"Their local time is {moment:%A} {moment.day} {moment:%B %Y, %H:%M} ({context.zone}).")
    elif context.current_date:
        lines.append(f"Their device gives today's date as {context.current_date}.")
    if context.input_mode == "voice":
        lines.append("They are speaking, not typing: answer in short sentences that sound right read aloud.")
    return lines


def messages(request: ChatRequest, intent: str, history: list[dict[str, str]]) -> list[dict[str, str]]:
    """The persona, earlier turns of the conversation, this chat's context, then the new message."""
    return [
        {"role": "system", "content": PERSONA},
        *history,
        {"role": "system", "content": chat_context(request, intent)},
        {"role": "user", "content": request.message},
    ]
