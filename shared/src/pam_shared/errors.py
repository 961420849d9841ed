"""Every error code PAM sends, in one typed table: socket ``error`` frames (both dialects) and
REST bodies are built from it, so a misspelt code fails type checking instead of at run time.

A message may name fields of the error's ``details`` (``{resets_at}``): they are filled in
when the frame is built, so the words a person reads say what the details say.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple, get_args

from pam_shared.protocol import Error

ErrorCode = Literal[
    "invalid_json",
    "unknown_type",
    "invalid_message",
    "binary_unsupported",
    "message_too_large",
    "user_mismatch",
    "token_invalid",
    "token_expired",
    "orchestrator_unavailable",
    "timeout",
    "llm_error",
    "internal_error",
    "worker_lost",
    "rate_limited",
    "budget_exceeded",
    "connection_limited",
    "token_expiring",
    "resume_gap",
    "origin_forbidden",
    "forbidden",
    "not_found",
    "bad_request",
    "persistence_unavailable",
    "usage_unavailable",
    "export_in_progress",
    "export_unavailable",
    "busy",
    "nothing_to_cancel",
    "not_in_conversation",
    "timer_invalid",
    "timer_not_found",
    "timers_unavailable",
    "voice_unavailable",
    "voice_failed",
    "voice_too_long",
    "voice_invalid",
    "erasing",
    "erasure_unavailable",
    "invalid_body",
]


class Problem(NamedTuple):
    """What a code means: the words a person reads, and the HTTP status REST answers it with."""

    message: str
    status: int


ERRORS: dict[ErrorCode, Problem] = {
    "invalid_json": Problem("That message was not valid JSON.", 400),
    "unknown_type": Problem("That message type is not one PAM understands.", 400),
    "invalid_message": Problem("That message is missing a field or has a field of the wrong type.", 400),
    "binary_unsupported": Problem("Binary frames are not supported; send JSON text.", 400),
    "message_too_large": Problem("That message is too large.", 413),
    "user_mismatch": Problem("The message's user_id is not the signed-in user.", 403),
    "token_invalid": Problem("The sign-in token is missing or not valid. Please sign in again.", 401),
    "token_expired": Problem("The sign-in token has expired. Please sign in again.", 401),
    "orchestrator_unavailable": Problem("PAM's assistant is not available right now. Please try again shortly.", 503),
    "timeout": Problem("PAM took too long to answer. Please try again.", 504),
    "llm_error": Problem("The AI service failed to answer. Please try again.", 502),
    "internal_error": Problem("Something went wrong on PAM's side.", 500),
    "worker_lost": Problem("PAM lost track of that answer part-way through. Please ask again.", 502),
    "rate_limited": Problem("You're sending messages too quickly. Please wait a moment.", 429),
    "budget_exceeded": Problem(
        "You have used up your PAM allowance for this {period}. It resets at {resets_at} (UTC).", 429
    ),
    "connection_limited": Problem("Too many connections. Please close other PAM tabs or try again shortly.", 429),
    "token_expiring": Problem("Your sign-in is about to expire. Refreshing it keeps this conversation open.", 401),
    "resume_gap": Problem("Some messages are too old to replay. Reload the conversation history.", 410),
    "origin_forbidden": Problem("This web page is not allowed to use PAM (PAM_ALLOWED_ORIGINS).", 403),
    "forbidden": Problem("This needs an admin token.", 403),
    "not_found": Problem("There is no such conversation.", 404),
    "bad_request": Problem("A query parameter is not valid.", 400),
    "persistence_unavailable": Problem(
        "Conversation history is not available right now. Please try again shortly.", 503
    ),
    "usage_unavailable": Problem("Your usage is not available right now. Please try again shortly.", 503),
    "export_in_progress": Problem("An export of your data is already running. Try again once it has finished.", 409),
    "export_unavailable": Problem("Your data cannot be exported right now. Please try again shortly.", 503),
    "busy": Problem("PAM is still answering your last message. Send this one again when it has finished.", 409),
    "nothing_to_cancel": Problem("There is no answer of yours with that id to stop: it has ended, or never was.", 404),
    "not_in_conversation": Problem(
        "That message is not in the conversation going on, so it cannot be answered again or edited.", 404
    ),
    "timer_invalid": Problem("That timer or alarm cannot be set: check its duration, time, date and time zone.", 400),
    "timer_not_found": Problem("There is no such timer or alarm (it may have been dismissed already).", 404),
    "timers_unavailable": Problem(
        "Timers and alarms are not available: PAM's NATS servers are too old (2.12 or later needed).", 503
    ),
    "voice_unavailable": Problem(
        "Spoken answers are not available: PAM has no speech model key (OPENAI_API_KEY).", 503
    ),
    "voice_failed": Problem("The speech service failed to speak that answer. Please try again.", 502),
    "voice_too_long": Problem("That answer is too long to speak in one piece.", 413),
    "voice_invalid": Problem("A voice request needs the answer's text in `text`.", 400),
    "erasing": Problem("Your data is being erased. Please try again in a moment.", 409),
    "erasure_unavailable": Problem("Your data cannot be erased right now. Please try again shortly.", 503),
    "invalid_body": Problem("The request body is not valid: see `details` for what is wrong with it.", 400),
}

if missing := set(get_args(ErrorCode)) ^ ERRORS.keys():  # a code without words, or words without a code
    raise RuntimeError(f"pam_shared.errors: ErrorCode and ERRORS disagree on {sorted(missing)}")


def message(code: ErrorCode, details: object = None) -> str:
    """The words for ``code``, with the fields it names taken from ``details``."""
    text = ERRORS[code].message
    return text.format_map(details) if "{" in text and isinstance(details, Mapping) else text


def error_frame(code: ErrorCode, details: object = None, reply_to: str | None = None) -> Error:
    """Build the ``error`` frame for ``code`` with its human message."""
    return Error(message=message(code, details), code=code, details=details, reply_to=reply_to)


def error_body(code: ErrorCode, detail: str | None = None, details: object = None) -> dict[str, object]:
    """A REST error body: ``error`` and ``error_code`` (the shipped client reads either), the words,
    and what went wrong (``detail``, a few words) or what to do about it (``details``), if any."""
    body: dict[str, object] = {"error": code, "error_code": code, "message": message(code, details)}
    if detail:
        body["detail"] = detail
    if details is not None:
        body["details"] = details
    return body
