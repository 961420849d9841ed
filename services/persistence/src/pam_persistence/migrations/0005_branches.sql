-- Conversations are trees: an answer names the user message it answers (a regenerated answer
-- is a sibling of the earlier one), and an edited user message names the one it replaces.
ALTER TABLE messages ADD COLUMN parent_id text;
ALTER TABLE messages ADD COLUMN edit_of text;
