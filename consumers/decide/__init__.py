"""Deciding, the Kafka side: a poll batch is decoded, judged by the rules and written to the state
store and outbox in one transaction; then its offsets are committed."""
