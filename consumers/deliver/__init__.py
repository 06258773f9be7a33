"""Delivering, the SMTP side: the dispatcher claims outbox entries, renders them in batches, sends them
over persistent connections and records each outcome."""
