"""The intake with the real suppression list (its producer a recorder): a flood of bounces for one address."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from consumers.deliver.verp import address_digest, read_token
from feedback.classify import classify_message
from feedback.intake import FeedbackIntake, Result
from feedback.suppression_list import SuppressionList
from ordernotify.metrics import Metrics
from tests.feedback.bounce_messages import dsn
from tests.feedback.test_receiver import CUSTOMER, SETTINGS, RecordingDeadLetters, verp


class _Sent:
    def get(self, timeout: float | None = None) -> None:
        return None


class RecordingProducer:
    def __init__(self) -> None:
        self.keys: list[bytes] = []

    def send(self, topic: str, key: bytes, value: bytes, **_: Any) -> _Sent:
        self.keys.append(key)
        return _Sent()


def test_a_flood_of_bounces_for_one_address_is_one_record_whose_count_goes_up() -> None:
    producer, metrics = RecordingProducer(), Metrics()
    suppressions = SuppressionList(SETTINGS, producer)
    intake = FeedbackIntake(SETTINGS, suppressions, RecordingDeadLetters(), metrics)
    message = dsn(CUSTOMER)
    token = read_token(verp(), SETTINGS)
    results = {intake.take(classify_message(message), token, message).result for _ in range(500)}
    assert results == {Result.SUPPRESSED}
    record = suppressions.get(address_digest(CUSTOMER))
    assert record is not None and record.count == 500
    assert set(producer.keys) == {address_digest(CUSTOMER).encode()}  # one key on the compacted topic
    assert record.first_at <= record.last_at <= datetime.now(UTC)
    assert metrics.registry.get_sample_value("ordernotify_feedback_total",
                                             {"kind": "hard_bounce", "source": "dsn"}) == 500
