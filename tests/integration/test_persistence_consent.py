"""A batch stored as each of its users chose, by the settings PostgreSQL holds when it is written."""

from __future__ import annotations

from datetime import timedelta

from pam_persistence import consent, store
from pam_persistence import db as database
from pam_persistence.conversations import Activity
from pam_shared.privacy import Privacy
from support.persistence import answer, count, user_message

GAP = Activity(timedelta(minutes=30), timedelta(seconds=60))


async def test_each_user_in_a_batch_is_stored_as_they_chose_and_a_redelivery_adds_nothing(database_url, db):
    pool = await database.open_pool(database_url, 2)
    try:
        await db.execute(
            "INSERT INTO privacy_settings VALUES ('hermit', false, true, now()), ('quiet', true, false, now())"
        )
        batch = [
            user_message("hermit", "secret words"),
            answer("hermit", "secret answer"),
            user_message("quiet", "words we keep"),
            answer("quiet", "an answer we keep", session_id="s-quiet"),
            user_message("open", "hello"),
            answer("open", "hi"),
        ]
        keeping = store.Keeping(await consent.salt_of(pool), Privacy())
        await store.write(pool, batch, [], GAP, keeping)
        await store.write(pool, batch, [], GAP, keeping)  # redelivered
    finally:
        await pool.close()

    assert await count(db, "messages", "content LIKE 'secret%'") == 0
    assert [r["id"] for r in await db.fetch("SELECT id FROM users ORDER BY id")] == ["open", "quiet"]
    assert await count(db, "analytics_events", "user_id = 'hermit'") == 1
    assert await count(db, "messages", "user_id = 'quiet'") == 2
    assert await count(db, "analytics_events", "user_id = 'quiet' OR session_id = 's-quiet'") == 0
    assert await count(db, "analytics_events", "user_id = '' AND session_id = '' AND message_id = ''") == 1
    assert await count(db, "messages", "user_id = 'open'") == 2
    assert await count(db, "analytics_events", "user_id = 'open'") == 1


async def test_a_user_who_never_chose_is_stored_by_the_default(database_url, db):
    pool = await database.open_pool(database_url, 2)
    try:
        keeping = store.Keeping(await consent.salt_of(pool), Privacy(store_conversations=False, analytics=True))
        await store.write(pool, [user_message("newcomer", "secret words"), answer("newcomer")], [], GAP, keeping)
    finally:
        await pool.close()
    assert await count(db, "messages") == 0 and await count(db, "users") == 0
    assert await count(db, "analytics_events", "user_id = 'newcomer'") == 1
