"""`pam-stack`: run the whole PAM stack locally, starting NATS and PostgreSQL when none are given."""
