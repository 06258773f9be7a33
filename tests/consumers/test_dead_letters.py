"""KafkaDeadLetters against a recording producer: what a dead letter adds to its record, and the last resort."""

from __future__ import annotations

from typing import Any

from kafka.errors import MessageSizeTooLargeError
from kafka.record.default_records import DefaultRecordBatchBuilder

from cli.dlq import DeadLetter
from consumers import dead_letters as dlq
from consumers.dead_letters import KafkaDeadLetters, SourceRecord
from ordernotify.config import DEAD_LETTER_HEADROOM_BYTES, MiB


class _Future:
    def __init__(self, error: Exception | None) -> None:
        self._error = error

    def get(self, timeout: float | None = None) -> None:
        if self._error is not None:
            raise self._error


class _RecordingProducer:
    """Takes records up to ``limit`` bytes (kafka-python's own estimate), as a producer's max_request_size does."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: list[dict[str, Any]] = []

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> _Future:
        if _size(key, value, headers) > self.limit:
            return _Future(MessageSizeTooLargeError("larger than max_request_size"))
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": headers})
        return _Future(None)

    def flush(self, timeout: float | None = None) -> None:
        pass


def _size(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> int:
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers))


def _largest_source(value: bytes) -> SourceRecord:
    """Every coordinate as long as Kafka allows: a 249-character topic, the largest partition and offset."""
    return SourceRecord("t" * 249, 2**31 - 1, 2**63 - 1, b"k" * 1000, value, (("trace", b"x" * 100),))


def test_what_a_dead_letter_adds_fits_the_headroom() -> None:
    record = _largest_source(b"v" * MiB)
    producer = _RecordingProducer(limit=10 * MiB)
    KafkaDeadLetters(producer, "notifications.dlq").publish(record, "render_failed", "é" * 50_000)
    (sent,) = producer.sent
    assert sent["value"] == record.value
    added = _size(sent["key"], sent["value"], sent["headers"]) - _size(record.key, record.value, list(record.headers))
    assert 0 < added <= 4096 < DEAD_LETTER_HEADROOM_BYTES  # dlq.detail is cut at 2,000 bytes

    replay = DeadLetter(2**31 - 1, 2**63 - 1, 0, sent["key"], sent["value"], tuple(sent["headers"]))
    replay_added = _size(replay.key, replay.value, replay.replay_headers()) - _size(
        record.key, record.value, list(record.headers))
    assert 0 < replay_added <= 64  # the dlq.replayed_from header


def test_a_record_at_the_limit_is_dead_lettered_whole() -> None:
    limit = 2 * MiB
    overhead = _size(b"k" * 1000, b"v" * limit, [("trace", b"x" * 100)]) - limit
    value = b"v" * (limit - overhead)
    record = _largest_source(value)
    assert _size(record.key, record.value, list(record.headers)) == limit
    producer = _RecordingProducer(limit=limit + DEAD_LETTER_HEADROOM_BYTES)
    KafkaDeadLetters(producer, "notifications.dlq").publish(record, "undecodable", "not Avro")
    (sent,) = producer.sent
    assert sent["value"] == value and dlq.VALUE_DROPPED not in dict(sent["headers"])


def test_a_record_over_the_limit_keeps_its_size_and_coordinates_only() -> None:
    record = _largest_source(b"v" * (3 * MiB))
    producer = _RecordingProducer(limit=2 * MiB)
    KafkaDeadLetters(producer, "notifications.dlq").publish(record, "undecodable", "not Avro")
    (sent,) = producer.sent
    headers = dict(sent["headers"])
    assert sent["value"] is None and sent["key"] == record.key
    assert headers[dlq.VALUE_DROPPED] == str(3 * MiB).encode()
    assert headers[dlq.SOURCE_OFFSET] == str(2**63 - 1).encode() and headers[dlq.REASON] == b"undecodable"
