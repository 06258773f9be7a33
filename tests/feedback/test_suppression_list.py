"""The suppression policy, with a fake clock and a producer that records what was published."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError

from consumers.deliver.verp import VerpToken, address_digest
from feedback.classify import Feedback, FeedbackKind
from feedback.exceptions import SuppressionNotPublished
from feedback.suppression_list import SuppressionList, SuppressionReason, SuppressionRecord
from ordernotify.config import Settings
from schemas.suppressions import SuppressionCodec

T0 = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
ADDRESS = "Bob.Customer@Example.org"
TOKEN = VerpToken("0123456789abcdef0123456789abcdef", address_digest(ADDRESS)[:10])


class Done:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def get(self, timeout: float | None = None) -> None:
        if self.error is not None:
            raise self.error


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, SuppressionRecord]] = []
        self.tombstones: list[tuple[str, bytes, Any]] = []
        self.fail: Exception | None = None

    def send(self, topic: str, key: bytes, value: bytes | None, headers: Any = None) -> Done:
        if self.fail is not None:
            return Done(self.fail)
        if value is None:
            self.tombstones.append((topic, key, headers))
        else:
            self.sent.append((topic, key, SuppressionCodec().decode(value)))
        return Done()


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def bounce(kind: FeedbackKind, status: str = "5.1.1") -> Feedback:
    return Feedback(kind, ADDRESS.upper(), status, f"550 {status} <{ADDRESS}>: Recipient address rejected", "dsn")


@pytest.fixture
def producer() -> RecordingProducer:
    return RecordingProducer()


@pytest.fixture
def suppressions(producer: RecordingProducer) -> SuppressionList:
    return SuppressionList(Settings(), producer)


def test_a_hard_bounce_suppresses_until_lifted_keyed_by_digest_with_no_address_on_the_topic(
        suppressions: SuppressionList, producer: RecordingProducer) -> None:
    record = suppressions.apply(bounce(FeedbackKind.HARD_BOUNCE), TOKEN, "O-1", "C-1", T0)
    assert record is not None
    assert (record.reason, record.count, record.suppressed_until, record.first_at) == (
        SuppressionReason.HARD_BOUNCE, 1, None, T0)
    assert (record.notification_id, record.order_id, record.customer_id) == (TOKEN.notification_id, "O-1", "C-1")
    assert record.in_force(at(3650))
    assert record.stops(informational=False, complaint_blocks_must_send=False, now=at(1))
    assert record.describe() == "hard bounce on 2026-12-02"
    ((topic, key, published),) = producer.sent
    assert topic == "customers.suppressions" and key == address_digest(ADDRESS).encode()
    assert published == record
    assert "@" not in record.detail and "5.1.1" in record.detail  # the diagnostic without the address
    assert suppressions.get(address_digest(" bob.customer@example.org ")) == record


def test_soft_bounces_suppress_after_the_limit_within_the_window_and_the_suppression_expires(
        suppressions: SuppressionList) -> None:
    soft = bounce(FeedbackKind.SOFT_BOUNCE, "4.2.2")
    first = suppressions.apply(soft, TOKEN, None, None, T0)
    second = suppressions.apply(soft, TOKEN, None, None, at(5))
    assert first is not None and second is not None
    assert not first.in_force(T0) and not second.in_force(at(5))  # counted, not suppressed
    assert second.count == 2 and second.first_at == T0
    third = suppressions.apply(soft, TOKEN, None, None, at(10))  # the third within 14 days
    assert third is not None and third.count == 3
    assert third.suppressed_until == at(17)  # 7 days
    assert third.stops(informational=False, complaint_blocks_must_send=False, now=at(16))
    assert third.describe() == "soft bounces (3) until 2026-12-19"
    assert not third.in_force(at(17))  # expired: e-mail goes out again
    again = suppressions.apply(soft, TOKEN, None, None, at(18))  # a new window starts
    assert again is not None and again.count == 1 and not again.in_force(at(18))


def test_soft_bounces_spread_wider_than_the_window_start_the_count_over(suppressions: SuppressionList) -> None:
    soft = bounce(FeedbackKind.SOFT_BOUNCE, "4.2.2")
    suppressions.apply(soft, TOKEN, None, None, T0)
    suppressions.apply(soft, TOKEN, None, None, at(10))
    late = suppressions.apply(soft, TOKEN, None, None, at(15))  # 15 days after the first
    assert late is not None and (late.count, late.first_at) == (1, at(15)) and not late.in_force(at(15))


def test_a_complaint_stops_informational_news_and_must_send_mail_only_by_the_setting(
        suppressions: SuppressionList) -> None:
    record = suppressions.apply(Feedback(FeedbackKind.COMPLAINT, ADDRESS, None, None, "arf"), TOKEN, None, None, T0)
    assert record is not None and record.reason is SuppressionReason.COMPLAINT and record.suppressed_until is None
    assert record.stops(informational=True, complaint_blocks_must_send=False, now=at(30))
    assert not record.stops(informational=False, complaint_blocks_must_send=False, now=at(30))
    assert record.stops(informational=False, complaint_blocks_must_send=True, now=at(30))
    assert record.describe() == "spam complaint on 2026-12-02"


def test_auto_replies_unknown_messages_and_weaker_reasons_change_nothing(
        suppressions: SuppressionList, producer: RecordingProducer) -> None:
    assert suppressions.apply(Feedback(FeedbackKind.AUTO_REPLY, ADDRESS, None, None, "auto_reply"), TOKEN, None,
                              None, T0) is None
    assert suppressions.apply(Feedback(FeedbackKind.UNKNOWN, None, None, None, "unparsed", "no DSN"), None, None,
                              None, T0) is None
    hard = suppressions.apply(bounce(FeedbackKind.HARD_BOUNCE), TOKEN, None, None, T0)
    for kind in (FeedbackKind.SOFT_BOUNCE, FeedbackKind.COMPLAINT):  # a late soft bounce must not shorten it
        assert suppressions.apply(Feedback(kind, ADDRESS, "4.2.2", None, "dsn"), TOKEN, None, None, at(1)) is None
    assert suppressions.get(address_digest(ADDRESS)) == hard
    assert len(producer.sent) == 1


def test_manual_add_and_remove_say_who_and_why_and_remove_of_nothing_is_none(
        suppressions: SuppressionList, producer: RecordingProducer) -> None:
    assert suppressions.remove(ADDRESS, "ops-anna", "nothing to lift", T0) is None
    added = suppressions.add(ADDRESS, "ops-anna", "customer asked by phone", T0)
    assert added.reason is SuppressionReason.MANUAL and added.detail == "by ops-anna: customer asked by phone"
    assert added.stops(informational=False, complaint_blocks_must_send=False, now=at(100))
    lifted = suppressions.remove(ADDRESS, "ops-ben", "address fixed", at(1))
    assert lifted is not None and (lifted.lifted_at, lifted.lifted_by, lifted.lifted_why) == (
        at(1), "ops-ben", "address fixed")
    assert not lifted.stops(informational=True, complaint_blocks_must_send=True, now=at(1))
    assert [r.lifted_at for _, _, r in producer.sent] == [None, at(1)]


def test_lifted_then_bounced_again_starts_a_new_suppression(suppressions: SuppressionList) -> None:
    suppressions.apply(bounce(FeedbackKind.HARD_BOUNCE), TOKEN, None, None, T0)
    suppressions.apply(bounce(FeedbackKind.HARD_BOUNCE), TOKEN, None, None, at(1))
    assert suppressions.get(address_digest(ADDRESS)).count == 2  # type: ignore[union-attr]
    suppressions.remove(ADDRESS, "ops-ben", "customer says it works again", at(2))
    again = suppressions.apply(bounce(FeedbackKind.HARD_BOUNCE), TOKEN, None, None, at(9))
    assert again is not None
    assert (again.count, again.first_at, again.lifted_at, again.lifted_by) == (1, at(9), None, None)
    assert again.describe() == "hard bounce on 2026-12-11"


def test_a_publish_the_broker_did_not_acknowledge_changes_nothing(
        suppressions: SuppressionList, producer: RecordingProducer) -> None:
    producer.fail = KafkaTimeoutError("no ack")
    with pytest.raises(SuppressionNotPublished, match="did not take the suppression"):
        suppressions.apply(bounce(FeedbackKind.HARD_BOUNCE), TOKEN, None, None, T0)
    assert suppressions.get(address_digest(ADDRESS)) is None


def test_the_settings_drive_the_soft_bounce_policy(producer: RecordingProducer) -> None:
    settings = dataclasses.replace(Settings(), soft_bounce_limit=1, soft_bounce_suppress_days=2.0)
    record = SuppressionList(settings, producer).apply(bounce(FeedbackKind.SOFT_BOUNCE, "4.2.2"), None, None,
                                                       None, T0)
    assert record is not None and record.suppressed_until == at(2)


def test_forget_publishes_a_tombstone_for_the_digest_and_the_list_no_longer_has_it(
        suppressions: SuppressionList, producer: RecordingProducer) -> None:
    suppressions.apply(bounce(FeedbackKind.HARD_BOUNCE), TOKEN, "O-1", "C-1", at(0))
    suppressions.add("other@example.org", "ops", "asked", at(1))
    digest = address_digest(ADDRESS)
    assert suppressions.of_customer("C-1") == [digest] and suppressions.of_customer("C-2") == []
    suppressions.forget(digest)
    assert producer.tombstones == [("customers.suppressions", digest.encode("ascii"), [])]
    assert suppressions.get(digest) is None and suppressions.of_customer("C-1") == []
    assert [r.address_digest for r in suppressions.records()] == [address_digest("other@example.org")]


def test_a_tombstone_the_broker_did_not_acknowledge_keeps_the_record(
        suppressions: SuppressionList, producer: RecordingProducer) -> None:
    suppressions.apply(bounce(FeedbackKind.HARD_BOUNCE), TOKEN, "O-1", "C-1", at(0))
    producer.fail = KafkaTimeoutError("no answer")
    with pytest.raises(SuppressionNotPublished):
        suppressions.forget(address_digest(ADDRESS))
    assert suppressions.get(address_digest(ADDRESS)) is not None


class TombstoneRecord:
    topic, partition, offset = "customers.suppressions", 0, 7

    def __init__(self, key: bytes, value: bytes | None) -> None:
        self.key, self.value = key, value


def test_loading_a_tombstone_forgets_the_address(suppressions: SuppressionList) -> None:
    digest = address_digest(ADDRESS)
    loaded: dict[str, SuppressionRecord] = {}
    record = SuppressionRecord(digest, SuppressionReason.MANUAL, at(0), at(0), 1, None)
    suppressions._read_one(TombstoneRecord(digest.encode(), SuppressionCodec().encode(record)), loaded)
    assert list(loaded) == [digest]
    suppressions._read_one(TombstoneRecord(digest.encode(), None), loaded)
    assert loaded == {}
