"""Durable policy state (processed events, order facts, pending windows, the send outbox, preferences)."""
