-- How an assistant message ended: complete, or cut short (stopped by the user, length, deadline,
-- content_filter, error) with what was said until then.  User messages have none.
ALTER TABLE messages ADD COLUMN state text;
