"""Stable error codes sent in ``error`` frames, with the words a person reads."""

from __future__ import annotations

from pam_shared.protocol import Error

MESSAGES: dict[str, str] = {
    "invalid_json": "That message was not valid JSON.",
    "unknown_type": "That message type is not one PAM understands.",
    "invalid_message": "That message is missing a field or has a field of the wrong type.",
    "binary_unsupported": "Binary frames are not supported; send JSON text.",
    "message_too_large": "That message is too large.",
    "user_mismatch": "The message's user_id is not the signed-in user.",
    "token_invalid": "The sign-in token is missing or not valid. Please sign in again.",
    "token_expired": "The sign-in token has expired. Please sign in again.",
    "orchestrator_unavailable": "PAM's assistant is not available right now. Please try again shortly.",
    "timeout": "PAM took too long to answer. Please try again.",
    "llm_error": "The AI service failed to answer. Please try again.",
    "internal_error": "Something went wrong on PAM's side.",
    "worker_lost": "PAM lost track of that answer part-way through. Please ask again.",
    "rate_limited": "You're sending messages too quickly. Please wait a moment.",
    "connection_limited": "Too many connections. Please close other PAM tabs or try again shortly.",
    "token_expiring": "Your sign-in is about to expire. Refreshing it keeps this conversation open.",
    "resume_gap": "Some messages are too old to replay. Reload the conversation history.",
    "origin_forbidden": "This web page is not allowed to use PAM (PAM_ALLOWED_ORIGINS).",
    "timer_invalid": "That timer or alarm cannot be set: check its duration, time, date and time zone.",
    "voice_unavailable": "Spoken answers are not available: PAM has no speech model key (OPENAI_API_KEY).",
    "voice_failed": "The speech service failed to speak that answer. Please try again.",
    "voice_too_long": "That answer is too long to speak in one piece.",
    "voice_invalid": "A voice request needs the answer's text in `text`.",
    "timers_unavailable": "Timers and alarms are not available: PAM's NATS servers are too old (2.12 or later needed).",
    "timer_not_found": "There is no such timer or alarm (it may have been dismissed already).",
}


def error_frame(code: str, details: object = None, reply_to: str | None = None) -> Error:
    """Build the ``error`` frame for ``code`` with its human message."""
    return Error(message=MESSAGES[code], code=code, details=details, reply_to=reply_to)
