"""What persistence keeps of each user: their privacy settings, and the fences of erased users.

Every batch is screened inside its own transaction, after taking an advisory lock per user
(the one an erasure takes too, so a batch and an erasure of the same user never interleave) and
then reading, in a statement of its own, what is known of its users (``known``):

- an event of an erased user, accepted before the erasure, is dropped (the fence);
- a user who keeps their conversations to themselves has no message stored, only analytics;
- a user who keeps analytics to themselves has them stored ``anonymous``.

Gateways and orchestrators already record what the user allows; this is for events in flight
while a setting changed, and for older services.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg
import msgspec
from nats.js.kv import KeyValue
from nats.micro.request import Request
from pam_shared.events import AnalyticsEvent, Answer, Event, analytics_of, anonymous
from pam_shared.privacy import Privacy, PrivacyChange, PrivacyRequest, privacy_encoder, privacy_request_decoder
from pam_shared.subjects import user_token

from pam_persistence import answers
from pam_persistence.known import Known
from pam_persistence.rows import moment


def user_hash(salt: str, user_id: str) -> str:
    """How an erasure fence names a user: not by id, by a salted hash of their token."""
    return hashlib.sha256(f"{salt}\0{user_token(user_id)}".encode()).hexdigest()


@dataclass(slots=True)
class Screened:
    """A batch as the users allow it to be stored, and the erased users it still carried."""

    events: list[Event]
    fenced: set[str] = field(default_factory=set)


async def lock_users(conn: asyncpg.Connection, user_ids: Sequence[str]) -> None:
    """Serialize with every other transaction writing or erasing these users (in one order: no
    deadlock), until this one ends.  A statement of its own: only statements after it see what
    the transactions it waited for committed."""
    if user_ids:
        await conn.execute(_LOCK, list(user_ids))


def screen(events: Sequence[Event], known: Mapping[str, Known], salt: str, default: Privacy) -> Screened:
    """``events`` as their users (``known``, read under their locks) let them be stored."""
    screened = Screened([])
    for event in events:
        held = known.get(event.user_id)
        if held is not None and held.erased_at is not None and moment(event.created_at) <= held.erased_at:
            screened.fenced.add(event.user_id)
            continue
        privacy = held.privacy if held is not None and held.privacy is not None else default
        screened.events.extend(allowed(event, privacy, salt))
    return screened


def allowed(event: Event, privacy: Privacy, salt: str) -> list[Event]:
    """``event`` as ``privacy`` lets it be stored: whole, in part, anonymous, or not at all."""
    if not event.user_id:
        return [event]
    if not privacy.store_conversations:
        if isinstance(event, Answer):
            return [_measured(analytics_of(event), privacy, salt)] if event.measured else []
        return [_measured(event, privacy, salt)] if isinstance(event, AnalyticsEvent) else []
    if isinstance(event, AnalyticsEvent):
        return [_measured(event, privacy, salt)]
    if isinstance(event, Answer) and event.measured and not privacy.analytics:
        return [msgspec.structs.replace(event, measured=False), _measured(analytics_of(event), privacy, salt)]
    return [event]


def _measured(event: AnalyticsEvent, privacy: Privacy, salt: str) -> AnalyticsEvent:
    """Anonymous under a stable id (a redelivery makes no second row) that only we can link."""
    if privacy.analytics:
        return event
    return anonymous(event, hashlib.sha256(f"{salt}\0{event.event_id}".encode()).hexdigest()[:32])


_LOCK = """
SELECT pg_advisory_xact_lock(key) FROM (
    SELECT DISTINCT hashtextextended(id, 0) AS key FROM unnest($1::text[]) AS ids (id) ORDER BY 1
) AS keys
"""


class Choices:
    """The privacy settings endpoint: read a user's settings, or change them (in PostgreSQL,
    then in the mirror every gateway follows, so the next chat on any gateway obeys)."""

    def __init__(self, pool: asyncpg.Pool, mirror: KeyValue, default: Privacy) -> None:
        self.pool, self.mirror, self.default = pool, mirror, default

    async def handle(self, request: Request) -> None:
        await answers.answer(request, privacy_request_decoder, self._serve)

    async def _serve(self, query: PrivacyRequest) -> Privacy:
        if query.change is None:
            row = await self.pool.fetchrow(_CHOSEN_ONE, query.user_id)
            return Privacy(row["store_conversations"], row["analytics"]) if row else self.default
        return await self._change(query.user_id, query.change)

    async def _change(self, user_id: str, change: PrivacyChange) -> Privacy:
        """Merge ``change`` into the stored settings and mirror the result, both under the row's
        lock, so two changes at once neither lose a field nor reach the mirror out of order."""
        default = self.default
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                _CHOOSE,
                user_id,
                change.store_conversations,
                change.analytics,
                default.store_conversations,
                default.analytics,
            )
            chosen = Privacy(row["store_conversations"], row["analytics"])
            await self.mirror.put(user_token(user_id), privacy_encoder.encode(chosen))
        return chosen


async def salt_of(pool: asyncpg.Pool) -> str:
    """The salt of erasure fences, made once by migration 0006."""
    return str(await pool.fetchval("SELECT salt FROM privacy_salt LIMIT 1"))


_CHOSEN_ONE = "SELECT store_conversations, analytics FROM privacy_settings WHERE user_id = $1"

_CHOOSE = """
INSERT INTO privacy_settings (user_id, store_conversations, analytics, updated_at)
VALUES ($1, COALESCE($2::boolean, $4::boolean), COALESCE($3::boolean, $5::boolean), now())
ON CONFLICT (user_id) DO UPDATE SET
    store_conversations = COALESCE($2::boolean, privacy_settings.store_conversations),
    analytics = COALESCE($3::boolean, privacy_settings.analytics),
    updated_at = now()
RETURNING store_conversations, analytics
"""
