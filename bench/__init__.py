"""Throughput and latency benchmark of ordernotify against a naive consumer and the stage limits.

Run with ``python -m bench.run`` (``make bench``); see ``bench/README.md``.
"""
