"""The state store and the outbox between the two stages: processed events, order facts, pending windows,
preferences, and the queue of e-mails with their states."""
