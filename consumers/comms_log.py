"""The communications log: one Avro record per e-mail sent or event not sent, on ``notifications.sent``.

Keyed by order id, so one order's history sits in one partition and
``ordernotify history --order ID`` reads only that partition. Records are queued for
a thread of the log's own, which hands them to the producer every ``HAND_OVER_S``:
kafka-python's ``send()`` blocks while it has no metadata for the topic (up to the
producer's ``max_block_ms``), and neither the event loop nor the thread that records
outcomes may wait for it. A queue and a periodic hand-over, not a task per record:
the records then linger in the producer anyway, and a wake-up per record cost more
than the record.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from schemas.codec import AvroCodec
from schemas.registry import NOTIFICATION_SENT

log = logging.getLogger(__name__)

HAND_OVER_S = 0.05


class CommsLog:
    """Publishes log records without waiting; a failed publish is logged, never blocks an e-mail."""

    def __init__(self, producer: Any, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._codec = AvroCodec(NOTIFICATION_SENT)
        self._queue: deque[dict[str, Any]] = deque()  # appends and pops are atomic: no lock needed
        self._closed = threading.Event()
        self._handed_over = threading.Condition()
        self._rounds = 0  # hand-overs completed
        self._thread = threading.Thread(target=self._run, name="comms-log", daemon=True)
        self._thread.start()

    def sent(self, *, order_id: str, customer_id: str, template: str, locale: str, subject: str, message_id: str,
             event_ids: Iterable[str], at: datetime | None = None) -> None:
        self._publish({
            "order_id": order_id, "customer_id": customer_id, "outcome": "SENT", "reason": None,
            "template": template, "locale": locale, "subject": subject, "message_id": message_id,
            "event_ids": list(event_ids), "recorded_at": at or datetime.now(UTC), "detail": None,
        })

    def not_sent(self, *, order_id: str, customer_id: str, reason: str, event_ids: Iterable[str],
                 template: str | None = None, detail: str | None = None, at: datetime | None = None) -> None:
        """``detail``: more about the reason for people (e.g. 'hard bounce on 2026-12-02'), never an address."""
        self._publish({
            "order_id": order_id, "customer_id": customer_id, "outcome": "NOT_SENT", "reason": reason,
            "template": template, "locale": None, "subject": None, "message_id": None,
            "event_ids": list(event_ids), "recorded_at": at or datetime.now(UTC), "detail": detail,
        })

    def _publish(self, record: dict[str, Any]) -> None:
        self._queue.append(record)

    def _run(self) -> None:
        while not self._closed.wait(HAND_OVER_S):
            self._hand_over()
        self._hand_over()

    def _hand_over(self) -> None:
        while self._queue:
            self._send(self._queue.popleft())
        with self._handed_over:
            self._rounds += 1
            self._handed_over.notify_all()

    def _send(self, record: dict[str, Any]) -> None:
        try:
            future = self._producer.send(self._topic, key=record["order_id"].encode(),
                                         value=self._codec.encode(record))
        except Exception as exc:  # KafkaTimeoutError on metadata, a full buffer: the e-mail is not held back for it
            log.error("communications log record lost: %s", exc)
            return
        future.add_errback(lambda exc: log.error("communications log record lost: %s", exc))

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until what is queued was handed over, then for the broker."""
        deadline = time.monotonic() + timeout_s
        with self._handed_over:
            until = self._rounds + 2  # one whole hand-over begun after this call has ended
            while self._rounds < until and self._thread.is_alive() and time.monotonic() < deadline:
                self._handed_over.wait(HAND_OVER_S * 2)
        self._producer.flush(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Hand over what is queued and stop the thread (before the producer is closed)."""
        self._closed.set()
        self._thread.join()
