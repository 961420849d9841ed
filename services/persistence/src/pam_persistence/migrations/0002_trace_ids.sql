-- The W3C trace id of the chat an event came from: the key to its log lines in every service.
ALTER TABLE messages ADD COLUMN trace_id text;
ALTER TABLE analytics_events ADD COLUMN trace_id text;
