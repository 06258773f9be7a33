"""The suppression list: compacted topic ``customers.suppressions``, keyed by the address's digest.

Minimal version for the bounce receiver (JSON values, the policy in brief); the Avro schema, the full policy
and the operators' commands replace it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
from datetime import datetime, timedelta
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from consumers.deliver.verp import VerpToken, address_digest
from feedback.classify import Feedback, FeedbackKind
from ordernotify.config import Settings
from ordernotify.reachability import reaching_broker

log = logging.getLogger(__name__)

CUSTOMER_SUPPRESSION = "customer_suppression"


class SuppressionReason(enum.StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"


@dataclasses.dataclass(frozen=True, slots=True)
class SuppressionRecord:
    address_digest: str
    reason: SuppressionReason
    first_at: datetime
    last_at: datetime
    count: int
    suppressed_until: datetime | None
    notification_id: str | None = None
    order_id: str | None = None
    customer_id: str | None = None
    detail: str = ""
    lifted_at: datetime | None = None
    lifted_by: str | None = None
    lifted_why: str | None = None


_TIMES = ("first_at", "last_at", "suppressed_until", "lifted_at")


def _encode(record: SuppressionRecord) -> bytes:
    values = dataclasses.asdict(record)
    for name in _TIMES:
        values[name] = values[name].isoformat() if values[name] else None
    return json.dumps(values).encode()


def _decode(raw: bytes) -> SuppressionRecord:
    values = json.loads(raw)
    for name in _TIMES:
        values[name] = datetime.fromisoformat(values[name]) if values[name] else None
    values["reason"] = SuppressionReason(values["reason"])
    return SuppressionRecord(**values)


_REASONS = {FeedbackKind.HARD_BOUNCE: SuppressionReason.HARD_BOUNCE,
            FeedbackKind.SOFT_BOUNCE: SuppressionReason.SOFT_BOUNCE,
            FeedbackKind.COMPLAINT: SuppressionReason.COMPLAINT}


class SuppressionList:
    def __init__(self, settings: Settings, producer: Any | None = None) -> None:
        self._settings = settings
        self._producer = producer
        self._records: dict[str, SuppressionRecord] = {}

    def load(self) -> None:
        """Read the topic to its end."""
        with reaching_broker(self._settings):
            consumer = KafkaConsumer(**self._settings.kafka_consumer_options(), enable_auto_commit=False,
                                     group_id=None)
        try:
            topic = self._settings.suppressions_topic
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not tps:
                return
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                for batch in consumer.poll(500).values():
                    for record in batch:
                        if record.value is None:
                            self._records.pop(record.key.decode(), None)
                        else:
                            self._records[record.key.decode()] = _decode(record.value)
        finally:
            consumer.close()

    def get(self, address_digest: str) -> SuppressionRecord | None:
        return self._records.get(address_digest)

    def apply(self, feedback: Feedback, token: VerpToken | None, order_id: str | None, customer_id: str | None,
              now: datetime) -> SuppressionRecord | None:
        reason = _REASONS.get(feedback.kind)
        if reason is None or feedback.recipient is None:
            return None
        digest = address_digest(feedback.recipient)
        old = self._records.get(digest)
        s = self._settings
        count = 1
        if old is not None and old.lifted_at is None and (
                reason is not SuppressionReason.SOFT_BOUNCE
                or now - old.last_at <= timedelta(days=s.soft_bounce_window_days)):
            count = old.count + 1
        until: datetime | None = None
        if reason is SuppressionReason.SOFT_BOUNCE:
            until = now + timedelta(days=s.soft_bounce_suppress_days) if count >= s.soft_bounce_limit else now
        record = SuppressionRecord(
            digest, reason, old.first_at if old is not None and count > 1 else now, now, count, until,
            token.notification_id if token else None, order_id, customer_id,
            " ".join(part for part in (feedback.status, feedback.diagnostic) if part)[:300])
        self._publish(record)
        return record

    def add(self, address: str, by: str, why: str, now: datetime) -> SuppressionRecord:
        record = SuppressionRecord(address_digest(address), SuppressionReason.MANUAL, now, now, 1, None,
                                   detail=f"{by}: {why}")
        self._publish(record)
        return record

    def remove(self, address: str, by: str, why: str, now: datetime) -> SuppressionRecord | None:
        old = self._records.get(address_digest(address))
        if old is None:
            return None
        record = dataclasses.replace(old, lifted_at=now, lifted_by=by, lifted_why=why)
        self._publish(record)
        return record

    def _publish(self, record: SuppressionRecord) -> None:
        if self._producer is None:
            with reaching_broker(self._settings):
                self._producer = KafkaProducer(**self._settings.kafka_producer_options(), acks="all",
                                               client_id="ordernotify-suppressions")
        self._producer.send(self._settings.suppressions_topic, key=record.address_digest.encode(),
                            value=_encode(record)).get(self._settings.produce_timeout_s)
        self._records[record.address_digest] = record

