"""The communications log: one Avro record per e-mail sent or event not sent, on ``notifications.sent``.

Keyed by order id, so one order's history sits in one partition and
``ordernotify history --order ID`` reads only that partition.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
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
        future = self._producer.send(self._topic, key=record["order_id"].encode(), value=self._codec.encode(record))
        future.add_errback(lambda exc: log.error("communications log record lost: %s", exc))

    def flush(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout_s)
