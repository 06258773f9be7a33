"""ordernotify: order lifecycle events on Kafka in, few and meaningful e-mails out."""

__version__ = "0.1.0"
