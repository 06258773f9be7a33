"""The embedded default: a real Kafka-protocol broker and an SMTP capture server on loopback.

Used by ``ordernotify demo``, the tests and the benchmark; production points at
Apache Kafka and a real MTA instead (see ``deploy/``).
"""
