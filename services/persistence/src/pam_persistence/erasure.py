"""Erasing a user everywhere, or one of their conversations.

A user's erasure, in this order, each step safe to run again (so is the whole):

1. every gateway and orchestrator stops serving the user (closes their sockets, cancels their
   answers, refuses their chats) and says so: nothing new is written for them meanwhile;
2. in one transaction, under the user's advisory lock (the one every batch takes): a fence
   (``erasures``: a salted hash of the user, and now), and their rows deleted.  From the commit
   on, any event of theirs accepted before it is dropped, however late it comes (``consent``);
3. every stream and key-value entry that holds their data is purged by subject
   (``pam_shared.erasure.places``);
4. the services are told it is done, and serve the user again (as a new user).
"""

from __future__ import annotations

import logging
import time

import asyncpg
import msgspec
from nats.aio.client import Client
from nats.micro.request import Request
from pam_shared import bus, discovery, logs
from pam_shared.auth import AuthError, verify_token
from pam_shared.erasure import (
    OPERATOR_ROLES,
    ConversationErase,
    ConversationErased,
    Erased,
    EraseRequest,
    Erasing,
    conversation_erase_decoder,
    erase_request_decoder,
    erasure_encoder,
    places,
)
from pam_shared.settings import AuthSettings
from pam_shared.subjects import Subjects, user_token

from pam_persistence import answers, metrics
from pam_persistence.consent import lock_users, user_hash

log = logging.getLogger("pam.persistence.erasure")

DISCOVERY_SECONDS = 0.5
STOP_TIMEOUT_SECONDS = 10.0


class Eraser:
    def __init__(self, nc: Client, pool: asyncpg.Pool, names: Subjects, auth: AuthSettings | None, salt: str) -> None:
        self.nc, self.pool, self.names, self.auth, self.salt = nc, pool, names, auth, salt

    async def on_erase(self, request: Request) -> None:
        await answers.answer(request, erase_request_decoder, self._erase_for)

    async def on_conversation(self, request: Request) -> None:
        await answers.answer(request, conversation_erase_decoder, self.erase_conversation)

    async def _erase_for(self, wanted: EraseRequest) -> Erased:
        """The token's own user, or, for an operator's token, the user it names."""
        if self.auth is None:
            raise answers.Forbidden("persistence has no JWT_SECRET or SUPABASE_URL to check tokens with")
        try:
            identity = await verify_token(wanted.token, self.auth)
        except AuthError as exc:
            raise answers.Forbidden(exc.code) from None
        if identity.demo:
            raise answers.Forbidden("a demo identity has nothing to erase")
        if wanted.user_id is None or wanted.user_id == identity.user_id:
            return await self.erase(identity.user_id)
        if identity.role not in OPERATOR_ROLES:
            raise answers.Forbidden("only an operator's token may name another user")
        return await self.erase(wanted.user_id)

    async def erase(self, user_id: str) -> Erased:
        started = time.monotonic()
        stopped = await self._tell(user_id, done=False)
        rows = await self._delete_rows(user_id)
        purged = await self._purge(user_id)
        await self._tell(user_id, done=True)
        metrics.erasures.inc()
        log.info(
            "erased a user: %d rows, %d stream messages, %d services stopped first (%.0f ms)",
            sum(rows.values()),
            sum(purged.values()),
            stopped,
            (time.monotonic() - started) * 1000,
            extra={"marker": logs.OK},
        )
        return Erased(rows, purged, stopped)

    async def _tell(self, user_id: str, done: bool) -> int:
        """Have every gateway and orchestrator act on the erasure; how many said they did."""
        expected: set[str] = set()
        for service in (self.names.gateway_service, self.names.orchestrator_service):
            expected |= {i.instance for i in await discovery.instances(self.nc, service, DISCOVERY_SECONDS)}
        payload = erasure_encoder.encode(Erasing(user_id, done))
        replies = await bus.gather_until(self.nc, self.names.erasing, payload, expected, STOP_TIMEOUT_SECONDS)
        if missing := expected - replies:
            log.warning("erasure: %d services did not answer: %s", len(missing), sorted(missing))
        return len(replies & expected)

    async def _delete_rows(self, user_id: str) -> dict[str, int]:
        async with self.pool.acquire() as conn, conn.transaction():
            await lock_users(conn, [user_id])
            await conn.execute(_FENCE, user_hash(self.salt, user_id))
            rows = {table: _count(await conn.execute(statement, user_id)) for table, statement in _DELETES}
            quoted = msgspec.json.encode(user_id)
            rows["dead_letters"] = _count(await conn.execute(_DEAD_LETTERS, f"%.{user_token(user_id)}", quoted))
            return rows

    async def _purge(self, user_id: str) -> dict[str, int]:
        js = self.nc.jetstream()
        purged: dict[str, int] = {}
        for stream, subject in await places(js, self.names, user_id):
            purged[stream] = purged.get(stream, 0) + await _purge(self.nc, stream, subject)
        return purged

    async def erase_conversation(self, query: ConversationErase) -> ConversationErased:
        """One conversation's rows; its recent turns go with them if it is the user's latest (the
        key-value entry holds only the latest conversation's turns)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await lock_users(conn, [query.user_id])
            latest = await conn.fetchval(_LATEST, query.user_id)
            messages = _count(await conn.execute(_CONVERSATION_MESSAGES, query.user_id, query.conversation_id))
            found = _count(await conn.execute(_CONVERSATION, query.user_id, query.conversation_id))
        if not found:
            return ConversationErased(False)
        if str(latest) == query.conversation_id:
            turns = self.names.turns_bucket
            await _purge(self.nc, f"KV_{turns}", f"$KV.{turns}.{user_token(query.user_id)}")
        log.info("erased a conversation: %d messages", messages, extra={"marker": logs.OK})
        return ConversationErased(True, messages)


class _PurgeError(msgspec.Struct):
    err_code: int = 0
    description: str = ""


class _PurgeReply(msgspec.Struct):
    purged: int = 0
    error: _PurgeError | None = None


_purge_reply_decoder = msgspec.json.Decoder(_PurgeReply)


async def _purge(nc: Client, stream: str, subject: str) -> int:
    """Purge ``subject`` from ``stream``; how many messages went (0 from a stream not made yet).
    The JetStream API itself: nats-py's ``purge_stream`` does not say how many."""
    body = erasure_encoder.encode({"filter": subject})
    reply = _purge_reply_decoder.decode((await nc.request(f"$JS.API.STREAM.PURGE.{stream}", body, timeout=5)).data)
    if reply.error is None:
        return reply.purged
    if reply.error.err_code == STREAM_NOT_FOUND:
        return 0
    raise RuntimeError(f"purging {stream}: {reply.error.description}")


def _count(status: str) -> int:
    """The row count of a command status (``DELETE 3``)."""
    return int(status.split()[-1])


STREAM_NOT_FOUND = 10059

_FENCE = """
INSERT INTO erasures (user_hash, erased_at) VALUES ($1, now())
ON CONFLICT (user_hash) DO UPDATE SET erased_at = now()
"""

_DELETES = (
    ("messages", "DELETE FROM messages WHERE conversation_id IN (SELECT id FROM conversations WHERE user_id = $1)"),
    ("conversations", "DELETE FROM conversations WHERE user_id = $1"),
    ("analytics_events", "DELETE FROM analytics_events WHERE user_id = $1"),
    ("privacy_settings", "DELETE FROM privacy_settings WHERE user_id = $1"),
    ("users", "DELETE FROM users WHERE id = $1"),
)

_DEAD_LETTERS = "DELETE FROM dead_letters WHERE subject LIKE $1 OR position($2::bytea IN data) > 0"
"""Parked events: by the token their subject ends with, and (events from before subjects named
users) by the user id, as JSON, in their bytes."""

_LATEST = "SELECT id FROM conversations WHERE user_id = $1 ORDER BY last_activity_at DESC LIMIT 1"

_CONVERSATION_MESSAGES = """
DELETE FROM messages WHERE conversation_id = (SELECT id FROM conversations WHERE user_id = $1 AND id::text = $2)
"""

_CONVERSATION = "DELETE FROM conversations WHERE user_id = $1 AND id::text = $2"
