-- Users, their conversations and messages, analytics, and the events that could not be stored.
-- Every event-born row is keyed by its event id, so a redelivered event never makes a second row.

CREATE TABLE users (
    id             text PRIMARY KEY,
    first_seen_at  timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL
);

-- A conversation is one user's run of messages with no idle gap longer than
-- PAM_CONVERSATION_IDLE_MINUTES; region is the first non-empty one its user messages carried.
CREATE TABLE conversations (
    id                uuid PRIMARY KEY,
    user_id           text NOT NULL REFERENCES users (id),
    started_at        timestamptz NOT NULL,
    last_activity_at  timestamptz NOT NULL,
    region            text NOT NULL DEFAULT ''
);
CREATE INDEX conversations_by_user_activity ON conversations (user_id, last_activity_at DESC, id DESC);

CREATE TABLE messages (
    id                 text PRIMARY KEY,               -- the event id (assistant: its message id)
    conversation_id    uuid NOT NULL REFERENCES conversations (id),
    user_id            text NOT NULL,
    session_id         text NOT NULL,
    role               text NOT NULL CHECK (role IN ('user', 'assistant')),
    content            text NOT NULL,
    intent             text,
    client_message_id  text,                           -- user messages: the id the client gave
    reply_to           text,                           -- assistant messages: the client id answered
    current_page       text NOT NULL DEFAULT '',
    ui_actions         jsonb,
    created_at         timestamptz NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, created_at, id);
CREATE INDEX messages_by_time ON messages (created_at);

CREATE TABLE analytics_events (
    id                      text PRIMARY KEY,          -- the event id
    user_id                 text NOT NULL,
    session_id              text NOT NULL,
    message_id              text NOT NULL,
    intent                  text NOT NULL,
    engine                  text NOT NULL,
    model                   text,
    orchestrator            text NOT NULL,
    total_ms                double precision NOT NULL,
    time_to_first_chunk_ms  double precision,
    tokens_in               integer,
    tokens_out              integer,
    error_code              text,
    created_at              timestamptz NOT NULL
);
CREATE INDEX analytics_events_by_time ON analytics_events (created_at);

-- Events that could not be decoded or stored, kept byte for byte with the reason.
CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    stream      text NOT NULL,
    stream_seq  bigint NOT NULL,
    subject     text NOT NULL,
    data        bytea NOT NULL,
    error       text NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream, stream_seq)
);
