"""The communications log: one Avro record per e-mail sent or event not sent, on ``notifications.sent``.

Keyed by order id, so one order's history sits in one partition and
``ordernotify history --order ID`` reads only that partition. Records are handed to
a thread of the log's own: kafka-python's ``send()`` blocks while it has no metadata
for the topic (up to the producer's ``max_block_ms``), and neither the event loop nor
the thread that records outcomes may wait for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from schemas.codec import AvroCodec
from schemas.registry import NOTIFICATION_SENT

log = logging.getLogger(__name__)


class CommsLog:
    """Publishes log records without waiting; a failed publish is logged, never blocks an e-mail."""

    def __init__(self, producer: Any, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._codec = AvroCodec(NOTIFICATION_SENT)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="comms-log")

    def sent(self, *, order_id: str, customer_id: str, template: str, locale: str, subject: str, message_id: str,
             event_ids: Iterable[str], at: datetime | None = None) -> None:
        self._publish({
            "order_id": order_id, "customer_id": customer_id, "outcome": "SENT", "reason": None,
            "template": template, "locale": locale, "subject": subject, "message_id": message_id,
            "event_ids": list(event_ids), "recorded_at": at or datetime.now(UTC),
        })

    def not_sent(self, *, order_id: str, customer_id: str, reason: str, event_ids: Iterable[str],
                 template: str | None = None, at: datetime | None = None) -> None:
        self._publish({
            "order_id": order_id, "customer_id": customer_id, "outcome": "NOT_SENT", "reason": reason,
            "template": template, "locale": None, "subject": None, "message_id": None,
            "event_ids": list(event_ids), "recorded_at": at or datetime.now(UTC),
        })

    def _publish(self, record: dict[str, Any]) -> None:
        self._thread.submit(self._send, record)

    def _send(self, record: dict[str, Any]) -> None:
        try:
            future = self._producer.send(self._topic, key=record["order_id"].encode(),
                                         value=self._codec.encode(record))
        except Exception as exc:  # KafkaTimeoutError on metadata, a full buffer: the e-mail is not held back for it
            log.error("communications log record lost: %s", exc)
            return
        future.add_errback(lambda exc: log.error("communications log record lost: %s", exc))

    def flush(self, timeout_s: float = 10.0) -> None:
        """Hand over what is queued, then wait for the broker."""
        self._thread.submit(lambda: None).result(timeout_s)
        self._producer.flush(timeout_s)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
