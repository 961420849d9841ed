"""What every PAM service shares: the wire protocol, NATS subjects, settings, auth and logging."""

__version__ = "0.1.0"
