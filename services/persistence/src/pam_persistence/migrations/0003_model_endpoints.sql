-- Which model endpoint answered (PAM_MODELS), and how much of the prompt the provider read from its cache.
ALTER TABLE analytics_events ADD COLUMN endpoint text;
ALTER TABLE analytics_events ADD COLUMN cached_tokens integer;
