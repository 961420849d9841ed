-- Privacy: what each user lets us keep, and the erasures that late events must not undo.
CREATE TABLE privacy_settings (
    user_id              text PRIMARY KEY,
    store_conversations  boolean NOT NULL,
    analytics            boolean NOT NULL,
    updated_at           timestamptz NOT NULL
);

-- An erased user is known here only by a salted hash of their id (privacy_salt), and only for
-- PAM_ERASURE_FENCE_DAYS: long enough that an event accepted before the erasure but stored after
-- it is recognised and dropped.  Retention removes the row after that.
CREATE TABLE erasures (
    user_hash  text PRIMARY KEY,
    erased_at  timestamptz NOT NULL
);
CREATE INDEX erasures_by_time ON erasures (erased_at);

CREATE TABLE privacy_salt (salt text NOT NULL);
INSERT INTO privacy_salt SELECT md5(random()::text || clock_timestamp()::text) || md5(random()::text);

-- Retention deletes by age, erasure by user.
CREATE INDEX conversations_by_activity ON conversations (last_activity_at);
CREATE INDEX analytics_events_by_user ON analytics_events (user_id);
CREATE INDEX dead_letters_by_time ON dead_letters (parked_at);
