"""Render docs/protocol.md from the msgspec types, so the document cannot drift from the code.

    python -m pam_shared.protocol_doc > docs/protocol.md      (or: make docs)

A unit test fails when the committed document differs from what this prints.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import msgspec

from pam_shared import wheels
from pam_shared.erasure import ConversationErased, Erased
from pam_shared.errors import ERRORS
from pam_shared.privacy import Privacy
from pam_shared.protocol import (
    ERASED,
    FORBIDDEN,
    RATE_LIMITED,
    SERVICE_RESTART,
    TRY_AGAIN_LATER,
    UNAUTHORIZED,
    ClientFrame,
    ServerFrame,
)
from pam_shared.read_api import Export

INTRO = """\
# PAM WebSocket protocol

Generated from `shared/src/pam_shared/protocol.py` by `make docs`; do not edit by hand.

## Endpoints

- `ws://HOST/ws/{user_id}?token=JWT`: the seed's URL; the token's `sub` must equal `user_id`.
- `ws://HOST/api/v1/pam/ws?token=JWT`: the user is taken from the token.

The token is a Supabase access token: `sub` is the user id, `exp` is required, `aud` if present
must be `authenticated`. HS256 tokens are checked with `JWT_SECRET` (the project's JWT secret).
When `SUPABASE_URL` is set, ES256 and RS256 tokens (Supabase's signing keys) are checked against
the project's JWKS, `$SUPABASE_URL/auth/v1/.well-known/jwks.json`, with the token's `kid`
naming the key; they must carry `aud` and `iss` = `$SUPABASE_URL/auth/v1`. While demo
mode is on, the token `demo-token` opens a demo session answered by the offline engine.
The demo token is public, so a demo session is nobody: it gets an identity of its own,
`demo:<random>` (its `connection` frame's `user_id`), whatever path id it came with. It sees no
user's kept frames, pushes, quota or history; its chats are not stored and are not resumable
on another socket. Its chats may carry the path id or that identity as `user_id`. Tokens whose
`sub` starts with `demo:` are refused. Demo chats share a per-client-IP budget.

Every frame is a JSON text frame with a `type` field. After a successful handshake the first
server frame is `connection` with `status: "connected"`.

## An answer

A `chat` is answered by zero or more `chat_chunk` frames (`seq` counts from 0), at most one
`ui_actions` frame, and then exactly one `chat_response` holding the whole text, or exactly
one `error`. Nothing of that answer follows its `chat_response`/`error`, so a client can stop
reading there. Every frame of an answer carries the chat's `message_id` as `reply_to`.
A client that knows only the seed's types can ignore `chat_chunk` and read `chat_response`.
If the worker answering dies mid-answer, the chat is retried once on another worker: the new
answer's first `chat_chunk` has `seq` 0 and `restart: true`; drop what was shown of that chat
(its chunks, and `ui_actions` already applied may come again). Only if the retry dies too does
the answer end with an `error` (`worker_lost`, or `timeout` when nothing was streamed).

## Limits and live tokens

Frames beyond the per-socket budget (`PAM_RATE_BURST`, refilled at `PAM_RATE_PER_SECOND`) and
chats beyond the per-user budget (`PAM_USER_MESSAGES_PER_MINUTE`, shared by all gateways) are
dropped with an `error` of code `rate_limited` whose `details.retry_after` says how many seconds
to wait; the socket stays open.

Each signed-in user may spend `PAM_USER_TOKENS_PER_DAY` model tokens per UTC day and
`PAM_USER_TOKENS_PER_MONTH` per UTC month (0, the default, is unlimited), counted across every
gateway and orchestrator. Once either is used up, a chat is refused before it reaches the model
with an `error` of code `budget_exceeded` whose `details` say which budget (`period`: `"day"` or
`"month"`), when it starts again (`resets_at`, ISO 8601 UTC: the next midnight UTC or the first
of the next month) and `retry_after_seconds`; the socket stays open. An answer is debited after it
ends, with the provider's reported usage (prompt plus completion tokens); an answer that ended
without it (cut short, a dropped stream, a deadline, an error after some text) is debited an
estimate of about 4 characters a token for the prompt sent and the text streamed, so the answer
that crosses a limit is still given in full and the next chat is refused. Demo sessions have no
budget. `GET /api/v1/usage` (`Authorization: Bearer JWT`) shows a user their own spend:
`{"day": {"used": N, "limit": L or null, "resets_at": "..."}, "month": {...}}`.

`PAM_TOKEN_WARNING_SECONDS` before the token's `exp` the server sends an `error` with code
`token_expiring`. Sending `{"type": "auth", "token": "<fresh JWT>"}` swaps the token without
reconnecting (answered by a `connection` frame with the new `expires_at`); without it the socket
closes with 4401 at expiry.

## Conversation control

**Stop.** `{"type": "cancel", "message_id": ID}` stops one of the user's answers from any of
their sockets, on any gateway: `ID` is the chat's `message_id` (its answer's frames carry it as
`reply_to`) or the answer's own `message_id`. The orchestrator answering it closes the model's
stream at once (the provider stops generating and billing), and the answer ends as usual, with
its `chat_response` holding what was said, marked `truncated: "stopped"`; that end is kept for
resume like any end, stored as the assistant message with state `stopped`, and billed (the
provider's usage, else estimated from what was streamed). The socket that sent the cancel gets
`cancelled` (`status: "stopped"`, or `"dequeued"` for a chat still waiting its turn, which ends
with an empty `chat_response` marked `stopped`). A cancel of an answer that has ended, or of
someone else's chat, changes nothing and gets an `error` with code `nothing_to_cancel` (its
`details.message_id` names it; it has no `reply_to`, so it ends no answer). Over REST:
`POST /api/v1/chats/{ID}/cancel` with `Authorization: Bearer JWT` answers the `cancelled`
frame as JSON, or 404 `nothing_to_cancel`.

**A second message while an answer streams.** When a chat arrives while an answer to the same
user is still streaming (from the same socket, another tab, another gateway), one policy
decides, cluster-wide: `PAM_DOUBLE_TEXTING` (default `enqueue`), or the chat's own `on_busy`.
`enqueue`: the chat waits its turn; it gets `queued` frames (`position` 1 is next) while it
waits, then its answer, whose prompt includes the exchange before it. `reject`: the chat is
refused with an `error` of code `busy` (`details.answering` names the chat being answered);
nothing else changes. `interrupt`: the answer streaming is stopped as by a cancel (its partial
stays in the conversation) and this chat is answered next. A chat's turn lasts at most its
answer's deadline (`PAM_ANSWER_DEADLINE_SECONDS`) plus 5 s, and an orchestrator that dies holding
it blocks the conversation for seconds, not that long: its chat's retry takes the turn over at
once, and a chat waiting behind it, after `PAM_PROGRESS_INTERVAL_SECONDS` (default 2 s) without
the turn coming free, asks that orchestrator whether it still answers; gone (killed: NATS has no
responders for it, twice an interval apart: once may be a reconnect) or "no", the turn is taken
over, so the wait is one or two intervals. The
answering orchestrator writes nothing for this, however long its answer; one that is slow to reply
(up to 1 s) is taken for alive, and one that is draining keeps its turn until its answer ends.

**Regenerate and edit.** `{"type": "regenerate", "answer_id": ID}` answers the same user turn
again (`ID`: the answer's `message_id`, or its chat's id); `{"type": "edit", "user_message_id":
ID, "message": TEXT}` replaces an earlier user message with `TEXT` and answers it. Both may carry
a `message_id` of their own (their answer's `reply_to`), a `context` and `on_busy`, and are
answered like a chat. Neither overwrites: the earlier answer (or question, and what followed
it) stays stored as a sibling, and the conversation goes on from the new one: the next prompt
follows the branch the user is on. The turn must be among the conversation's recent ones
(`PAM_HISTORY_TURNS`, within `PAM_CONVERSATION_IDLE_MINUTES`), else the `error` has code
`not_in_conversation`. The read API's messages carry the tree: `parent_id` (the message each
follows), `siblings` (the other messages that follow the same one) and `current` (on the branch
that leads to the latest message), and an answer's `state` (`complete`, or how it was cut
short).

## Resume after reconnect

Frames that matter after a drop (an answer's `ui_actions` and its final `chat_response` or
`error`, and every push) are kept for `PAM_RESUME_WINDOW_SECONDS` (default 15 minutes) in
JetStream and carry an increasing integer `event_id`. A client that reconnects, to any gateway,
sends `{"type": "resume", "last_event_id": <the highest event_id it saw>, "pending": [<message_id
of each chat still waiting for an answer>]}` and receives every kept frame after it, and the
kept answers to its pending chats (answers end out of order, so one may carry a lower id than
one already seen), in order, then live frames. Frames seen twice carry the same `event_id`:
ignore repeats. `chat_chunk` frames carry no `event_id`: they
are not kept, because the `chat_response` that ends the answer holds the whole text, so an
answer that was still streaming when the socket dropped arrives whole. If frames after
`last_event_id` have already left the window, an `error` with code `resume_gap` (and
`details.oldest_event_id`) says so first; reload the conversation history then.

Any service can push a server frame to a user by publishing it on `<namespace>.user.<user_id>`;
every socket that user has open, on every gateway, receives it (`pam_shared.delivery.push`
also keeps it for resume).

## Pushes: alerts and timers

A push is a frame no chat asked for: `proactive_alert` and `timer_expired`. It reaches every
socket of the user, but never in the middle of an answer: while a chat of that socket waits,
pushes wait (up to 32, in order; past that the oldest is dropped) and follow right after the
answer's `chat_response` or `error`.

- **Alerts.** Any service raises one with a NATS request to `<namespace>.alerts` carrying an
  `AlertRequest` (`pam_shared.alerts`: `user_id`, `category`, `message` up to 1000 characters,
  `priority` `low`/`medium`/`high`/`urgent`, up to four `actions`, `alert_type`); an
  orchestrator keeps and pushes it and answers `{"event_id", "alert_id"}`, or `{"error"}` for
  a malformed one. The model raises one with its `raise_alert` tool during a chat.
- **Timers and alarms.** The model's tools `set_timer` (`duration_seconds`), `set_alarm`
  (`time` HH:MM or HH:MM:SS in the user's time zone from the chat's context, optional `date`),
  `cancel_timer` and `list_timers` (the list arrives as a low-priority `proactive_alert`,
  category `timers`), or REST: `GET /api/v1/pam/timers` (the ones still due), `POST
  /api/v1/pam/timers` with `{"duration_seconds", "label"}` or `{"time", "date", "timezone",
  "label"}` (201; 400 `timer_invalid`), `DELETE /api/v1/pam/timers/{timer_id}` (404
  `timer_not_found`), each with `Authorization: Bearer JWT`. Timers are JetStream message
  schedules: they go off through restarts of every service and the loss of a NATS node. At
  its time every socket of the user gets `timer_expired`; if none was open, the next socket
  the user opens gets it after its welcome. `POST /api/v1/pam/internal/dismiss-timer` with
  `timer_id` (or `id`) in a JSON body or the query string forgets it (404 when unknown).
"""

WHEELS_INTRO = """## The WHEELS WINS dialect

The shipped WHEELS WINS frontend (`pamService.ts`) speaks its own dialect, served beside the
seed's paths; underneath, sessions, limits, resume and persistence are shared.

- `ws://HOST/api/v1/pam/ws/{user_id}?token=JWT` (and `/api/v1/pam-simple/ws/{user_id}`): the
  token's `sub` must equal `user_id`. A missing, invalid or expired token, a page whose origin
  is not in `PAM_ALLOWED_ORIGINS`, a busy client IP or a restarting gateway is refused at the
  handshake (HTTP 403), so the client's own backoff applies instead of a reconnect loop.
- The first frame is `connection` with `status: "connected"`. A `ping` (timestamp a number or
  a string) gets a `pong` echoing it; `pong`, `auth` (with `token`: a live refresh), `init` and
  `context_update` (a standing context that later chats' empty fields are filled from) are
  accepted without a reply.
- A chat is answered by exactly one `chat_response` (the text in `content`, `message` and
  `response`, its `ui_actions` inside) or one `error` (`error: true`). Nothing else carries
  `message`, `content`, `response` or `error`: a token about to expire, a limit hit by a
  frame that is not a chat, or a bad frame while a chat waits are `notice` frames, and a
  restart is `connection` with `status: "disconnected"` and no `message`. A chat with
  `stream: true` also gets `chat_response_delta` frames before its answer.
- `POST /api/v1/pam/chat` (and `/api/v1/pam-simple/chat`), `Authorization: Bearer JWT`:
  the same chat over HTTP, answered as one JSON body. A chat the client sends again within
  `PAM_IDEMPOTENCY_WINDOW_SECONDS` (same `message_id`, or same text when it has none), over
  the socket or REST, on any gateway, gets the answer already under way, not a second one.
  401 for a bad token, 403 `user_mismatch`, 400 `invalid_message`, 429 `rate_limited` or
  `budget_exceeded` (its `details` as on the socket) with `Retry-After`, 503 when no
  orchestrator answers, 504 when the answer does not come in 90 s; an answer that failed is
  200 with `error: true`. `GET /api/v1/pam/health` (and
  `/api/v1/pam-simple/health`) is the client's liveness check.
- CORS for these endpoints and the socket's `Origin` check both follow `PAM_ALLOWED_ORIGINS`.
"""

EXPORT_INTRO = """## Export: everything PAM holds about a user

`GET /api/v1/users/me/export` with `Authorization: Bearer JWT` downloads one JSON document
(`Content-Disposition: attachment; filename="pam-export-<UTC time>.json"`, `Cache-Control:
no-store`), an `Export` below: the user's privacy settings as stored, their token usage (what
`GET /api/v1/usage` shows), their pending timers, every stored conversation (oldest first, by
`started_at`) with all its messages (oldest first) and branches, and their analytics rows.
Each message has its place in the conversation's tree as the read API gives it (`parent_id`,
`siblings`, `current`), how an answer ended (`state`) and, for an edited message, the one it
replaces (`edit_of`). The demo token is refused as by the rest of the read API (401
`token_invalid`): a demo session has nothing stored.

The document is streamed (chunked) while the gateway reads it from persistence a page at a
time, so the first bytes come at once and no whole history is held anywhere; a message stored
while an export runs may or may not be in it. One export per user at a time on a gateway:
another is refused with 409 `export_in_progress`. Before the download starts, a failure is a
plain error: 503 `persistence_unavailable` when persistence does not answer, 503
`export_unavailable` when usage or timers cannot be read. Once it has started, should
persistence stop answering, the response ends without its final chunk and the connection is
closed: the client sees the transfer fail (curl exits 18, "transfer closed with outstanding
read data remaining"; httpx raises `RemoteProtocolError`; a browser marks the download failed)
and what arrived is not valid JSON. A cut-off export is never a shorter valid document; ask again.

Not in it: copies that live only minutes for delivery (the recent turns orchestrators keep for
`PAM_CONVERSATION_IDLE_MINUTES`, answers kept for resume) and events persistence could not store
(`dead_letters`, kept raw for operators).
"""

PRIVACY_INTRO = """## Privacy: settings and erasure

Every call carries `Authorization: Bearer JWT`; the place of every copy of a user's data, and
how long it stays, is in [privacy.md](privacy.md).

- `GET /api/v1/users/me/privacy` answers a `Privacy`; `PUT` the same path with either field or
  both changes them (a field left out keeps its value; an unknown field or a non-boolean is 400
  `bad_request`) and answers the settings now in force. The next chat on any gateway obeys them.
- `DELETE /api/v1/conversations/{id}` erases one of the user's conversations: 200 with a
  `ConversationErased`, 404 `not_found` for one that is not theirs.
- `DELETE /api/v1/users/me` erases everything PAM holds about the user, everywhere: 200 with an
  `Erased`. Their sockets are closed with `4410` first, and while it runs their new sockets get
  `4410` and their chats the `erasing` error (409). Repeating it is harmless (it finds nothing).
  503 `erasure_unavailable` when persistence cannot do it now.
- Operators' account-deletion pipelines send the same as a NATS request to
  `<namespace>.privacy.erase`, `{"token": JWT, "user_id": "..."}`: a token whose `role` is
  `service_role` or `admin` may name any user, any other token only its own. The reply is an
  `Erased`, or a `Nats-Service-Error-Code` header: 403 (the token may not), 400, 503.
"""

PRIVACY_TYPES = (Privacy, Erased, ConversationErased)

EXPORT_TYPES = ("Export", "PrivacyRecord", "Usage", "PeriodUse", "Timer", "ExportedConversation", "ExportedMessage",
                "AnalyticsRecord")  # fmt: skip

ERRORS_OUTRO = """\
Every code comes from one typed table (`pam_shared.errors`); REST error bodies carry the same
`error`/`error_code`, `message` and `details` as the socket's `error` frame, with the status above.
"""

CLOSE_CODES = [
    (1007, "A text frame that is not valid UTF-8."),
    (1009, "A frame far above `PAM_MAX_MESSAGE_BYTES` (smaller excesses get an `error` frame)."),
    (SERVICE_RESTART, "The gateway is restarting (after a `connection` frame with `status: disconnected`): reconnect."),
    (TRY_AGAIN_LATER, "The client stopped reading and its send queue passed `PAM_SEND_QUEUE_BYTES`."),
    (UNAUTHORIZED, "The token is missing, invalid or expired (an `error` frame says which first)."),
    (FORBIDDEN, "The token's user is not the user in the URL (`user_mismatch`)."),
    (RATE_LIMITED, "Too many sockets for this user, or connection attempts from this IP (`connection_limited`)."),
    (ERASED, "The user was erased (`DELETE /api/v1/users/me`); sockets opened while it runs get it too (`erasing`)."),
]


def render() -> str:
    _, components = msgspec.json.schema_components((ClientFrame, ServerFrame), ref_template="{name}")
    parts = [INTRO, "## Client → server frames\n"]
    parts += [_frame(components[t.__name__]) for t in ClientFrame.__args__]
    parts.append("## Server → client frames\n")
    parts += [_frame(components[t.__name__]) for t in ServerFrame.__args__]
    parts.append("## Nested types\n")
    parts += [
        _frame(components[name]) for name in ("ChatContext", "UserLocation", "SessionData", "UiAction", "AlertAction")
    ]
    errors: list[tuple[str, ...]] = [(f"`{c}`", str(p.status), p.message) for c, p in ERRORS.items()]
    parts.append(_table("Error codes", ("code", "HTTP status (REST)", "message"), errors))
    parts.append(ERRORS_OUTRO)
    parts.append(_table("Close codes", ("code", "meaning"), [(f"`{c}`", m) for c, m in CLOSE_CODES]))
    parts.append(_privacy())
    parts.append(_export())
    parts.append(_wheels())
    return "\n".join(parts)


def _privacy() -> str:
    _, components = msgspec.json.schema_components(PRIVACY_TYPES, ref_template="{name}")
    return "\n".join([PRIVACY_INTRO, *(_frame(components[t.__name__]) for t in PRIVACY_TYPES)])


def _export() -> str:
    _, components = msgspec.json.schema_components((Export,), ref_template="{name}")
    return "\n".join([EXPORT_INTRO, *(_frame(components[name]) for name in EXPORT_TYPES)])


def _wheels() -> str:
    """The WHEELS WINS dialect's section, from ``pam_shared.wheels``."""
    client, server = wheels.WheelsClientFrame.__args__, wheels.SERVER_FRAMES
    rest = (wheels.RestChatRequest, wheels.RestChatResponse)
    _, components = msgspec.json.schema_components((*client, *server, *rest), ref_template="{name}")
    parts = [WHEELS_INTRO, "### Client → server\n"]
    parts += [_frame(components[t.__name__], "####") for t in client]
    parts.append("### Server → client\n")
    parts += [_frame(components[t.__name__], "####") for t in server]
    parts.append(_frame(components["WheelsAlertContent"], "####"))
    parts.append("### REST\n")
    parts += [_frame(components[t.__name__], "####") for t in rest]
    return "\n".join(parts)


def _frame(schema: dict[str, Any], level: str = "###") -> str:
    properties = schema["properties"]
    tags = properties.get("type", {}).get("enum", [])
    title = f"{level} `{tags[0]}`" if len(tags) == 1 else f"{level} {schema['title']}"
    required = set(schema.get("required", []))
    rows = [
        (f"`{name}`", _type(prop), "yes" if name in required else "no", _default(prop))
        for name, prop in properties.items()
    ]
    header = f"{title}\n\n{inspect.cleandoc(schema.get('description', ''))}\n"
    return header + "\n" + _rows(("field", "type", "required", "default"), rows)


def _type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return f"`{prop['$ref']}`"
    if "enum" in prop:
        return " \\| ".join(f'`"{v}"`' for v in prop["enum"])
    if "anyOf" in prop:
        return " \\| ".join(_type(p) for p in prop["anyOf"])
    kind = prop.get("type")
    if kind == "array":
        return f"list of {_type(prop['items'])}"
    if kind == "object":
        return f"map of string to {_type(prop.get('additionalProperties', {}))}"
    if kind == "string" and "minLength" in prop:
        return f"string (at least {prop['minLength']} character)"
    return kind or "any JSON"


def _default(prop: dict[str, Any]) -> str:
    return f"`{msgspec.json.encode(prop['default']).decode()}`" if "default" in prop else ""


def _table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    return f"## {title}\n\n" + _rows(header, rows)


def _rows(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
