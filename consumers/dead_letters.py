"""The dead-letter topic: the original bytes and key, with why and where from in headers.

Nothing the consumer cannot handle is dropped: it lands here (durably, before
the source offset is committed) and ``ordernotify dlq`` can list and replay it.
The producer takes records up to ``Settings.max_dead_letter_bytes``: every record
of the events topic (``--max-record-bytes``) with the headers added here. Only a
larger one, which the events topic should not have held, loses its value here
(``dlq.value_dropped``), so that it never blocks its partition.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError, MessageSizeTooLargeError

from consumers.exceptions import DeadLetterError

log = logging.getLogger(__name__)

REASON = "dlq.reason"
DETAIL = "dlq.detail"
SOURCE_TOPIC = "dlq.source.topic"
SOURCE_PARTITION = "dlq.source.partition"
SOURCE_OFFSET = "dlq.source.offset"
FAILED_AT_MS = "dlq.failed_at_ms"
VALUE_DROPPED = "dlq.value_dropped"  # the original value was over the dead-letter topic's limit: its size


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """The parts of a consumed record that a dead letter keeps."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, record: Any) -> SourceRecord:
        return cls(
            record.topic, record.partition, record.offset, record.key, record.value,
            tuple((k, v or b"") for k, v in (record.headers or [])),
        )


class DeadLetters(Protocol):
    def publish(self, record: SourceRecord, reason: str, detail: str) -> None: ...


class KafkaDeadLetters:
    """Publishes to the dead-letter topic and waits for the broker's acknowledgement."""

    def __init__(self, producer: KafkaProducer, topic: str, timeout_s: float = 30.0) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout_s = timeout_s

    def publish(self, record: SourceRecord, reason: str, detail: str) -> None:
        headers = [h for h in record.headers if not h[0].startswith("dlq.")] + [
            (REASON, reason.encode()),
            (DETAIL, detail.encode("utf-8", "replace")[:2000]),
            (SOURCE_TOPIC, record.topic.encode()),
            (SOURCE_PARTITION, str(record.partition).encode()),
            (SOURCE_OFFSET, str(record.offset).encode()),
            (FAILED_AT_MS, str(int(time.time() * 1000)).encode()),
        ]
        try:
            try:
                self._send(record.key, record.value, headers)
            except MessageSizeTooLargeError:
                # The last resort, for a record over --max-record-bytes that the source topic took anyway:
                # keep its coordinates and size, so an operator can fetch it from the source topic (until
                # its retention ends); retrying would stall the partition.
                size = len(record.value or b"")
                log.error(
                    "%s[%d]@%d: its value (%d bytes) is over the dead-letter limit; dead-lettering it without "
                    "the value (raise --max-record-bytes and the topics' max.message.bytes to keep such records)",
                    record.topic, record.partition, record.offset, size,
                )
                self._send(record.key, None, [*headers, (VALUE_DROPPED, str(size).encode())])
        except KafkaError as exc:
            raise DeadLetterError(f"could not write to dead-letter topic {self._topic}: {exc}") from exc
        log.warning(
            "dead-lettered %s[%d]@%d to %s: %s (%s)",
            record.topic, record.partition, record.offset, self._topic, reason, detail,
        )

    def _send(self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        future = self._producer.send(self._topic, key=key, value=value, headers=headers)
        self._producer.flush(self._timeout_s)  # the shared producer lingers for the communications log
        future.get(self._timeout_s)
