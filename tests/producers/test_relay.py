"""The outbox relay's batch logic with fakes: what each staging value becomes, and that a batch's offsets are
committed only after every record of it was acknowledged, sent or dead-lettered."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
from kafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RequestTimedOutError,
)
from kafka.producer.future import RecordMetadata
from kafka.structs import OffsetAndMetadata, TopicPartition

from consumers.exceptions import DeadLetterError
from ordernotify.config import Settings
from ordernotify.errors import OrderNotifyError
from ordernotify.metrics import Metrics
from ordernotify.retry import Backoff
from producers import relay as relay_module
from producers.event_producer import OrderEventProducer
from producers.relay import BatchRelay, OutboxRelay, Refusal, batch_offsets, read_value
from schemas.codec import EventCodec
from schemas.events import CustomerPreferences, OrderEvent
from schemas.records import to_json_record
from tests import factories as f
from tests.producers.test_event_producer import FakeFuture

SETTINGS = Settings(events_topic="orders.events.t", preferences_topic="customers.preferences.t",
                    produce_timeout_s=0.2)
QUICK = Backoff(first_s=0.01, cap_s=0.01)
STAGING = "orders.events.json"


def _json(event: OrderEvent) -> bytes:
    """The payload as PostgreSQL prints a jsonb value (keys sorted by length, ", " and ": "), UTF-8."""
    record = to_json_record(event)
    return json.dumps(dict(sorted(record.items(), key=lambda kv: (len(kv[0]), kv[0]))),
                      ensure_ascii=False).encode()


@dataclass(frozen=True)
class StagedRecord:
    """What kafka-python's consumer hands over, as much as the relay reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def _staged(values: list[bytes | None], partition: int = 0, start: int = 0) -> list[StagedRecord]:
    return [StagedRecord(STAGING, partition, start + n, b"order-1", value, [("id", b"x")])
            for n, value in enumerate(values)]


class FakeKafkaProducer:
    """Acknowledges every send, except the sends numbered in ``refuse`` (0-based), which the broker refuses."""

    def __init__(self, refuse: set[int] | None = None, too_large: set[int] | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self._refuse = refuse or set()
        self._too_large = too_large or set()  # refused for good: the topic's max.message.bytes is smaller

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> FakeFuture:
        number = len(self.sent)
        self.sent.append({"topic": topic, "key": key, "value": value})
        future = FakeFuture()
        if number in self._refuse:
            future.failure(KafkaError("NOT_ENOUGH_REPLICAS"))
        elif number in self._too_large:
            future.failure(MessageSizeTooLargeError("MESSAGE_TOO_LARGE"))
        else:
            tp = TopicPartition(topic, 0)
            future.success(RecordMetadata(topic, 0, tp, number, 0, None, 0, len(value or b""), 0))
        return future

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


class FakeDeadLetters:
    """Records what is dead-lettered; fails the first ``failures`` publishes as a topic that is away would."""

    def __init__(self, failures: int = 0) -> None:
        self.published: list[tuple[Any, str, str]] = []
        self._failures = failures

    def publish(self, record: Any, reason: str, detail: str) -> None:
        if self._failures:
            self._failures -= 1
            raise DeadLetterError("could not write to dead-letter topic notifications.dlq: timed out")
        self.published.append((record, reason, detail))


def _relay(refuse: set[int] | None = None, dead_letter_failures: int = 0, too_large: set[int] | None = None
           ) -> tuple[BatchRelay, FakeKafkaProducer, FakeDeadLetters, Metrics]:
    fake, dead, metrics = FakeKafkaProducer(refuse, too_large), FakeDeadLetters(dead_letter_failures), Metrics()
    producer = OrderEventProducer(SETTINGS, producer=fake, metrics=metrics)
    return BatchRelay(producer, dead, metrics, backoff=QUICK), fake, dead, metrics


# -- what a staging value becomes ------------------------------------------------------------------------------

PLACED = f.placed_event(order_id="order-1")
NEGATIVE_PRICE = json.loads(_json(PLACED))
NEGATIVE_PRICE["payload"]["items"][0]["unit_price"]["amount_minor"] = -5
WRONG_TOTAL = json.loads(_json(PLACED))
WRONG_TOTAL["payload"]["total"]["amount_minor"] += 100
CONVERTER_HINT = "value.converter to org.apache.kafka.connect.storage.StringConverter"

REFUSED = [
    pytest.param(b"{\"event_id\": ", "undecodable", "not valid JSON", id="not JSON"),
    pytest.param(b"\xff{}", "undecodable", "not UTF-8 text: byte 0xff", id="not UTF-8"),
    pytest.param(b"[1, 2]", "undecodable", "must be a JSON object, not list", id="not an object"),
    pytest.param(json.dumps(_json(PLACED).decode()).encode(), "undecodable", CONVERTER_HINT,
                 id="JSON inside a JSON string (JsonConverter)"),
    pytest.param(None, "undecodable", "tombstone", id="no value"),
    pytest.param(json.dumps(NEGATIVE_PRICE).encode(), "invalid_event", "payload.items[0].unit_price.amount_minor",
                 id="negative price"),
    pytest.param(json.dumps({**json.loads(_json(PLACED)), "event_type": "ORDER_LOST"}).encode(), "invalid_event",
                 "ORDER_LOST", id="unknown event type"),
    pytest.param(json.dumps(WRONG_TOTAL).encode(), "sums_do_not_add_up", "payload.total", id="sums"),
]


def test_a_payload_as_postgresql_prints_it_is_the_event() -> None:
    event = read_value(_json(PLACED))
    assert isinstance(event, OrderEvent)
    assert to_json_record(event) == to_json_record(PLACED)  # (the JSON shape keeps milliseconds)


def test_a_preferences_update_is_read_as_one() -> None:
    value = b'{"preferences": {"customer_id": "c-1", "informational_updates": false, "updated_at": "now"}}'
    assert isinstance(read_value(value), CustomerPreferences)


@pytest.mark.parametrize(("value", "reason", "named"), REFUSED)
def test_a_value_that_is_no_event_is_refused_with_a_reason_and_a_detail_naming_why(
    value: bytes | None, reason: str, named: str
) -> None:
    refusal = read_value(value)
    assert isinstance(refusal, Refusal)
    assert refusal.reason == reason
    assert named in refusal.detail
    assert not refusal.detail.startswith("line ")  # a record has no line number


# -- a batch ------------------------------------------------------------------------------------------------------

def test_valid_events_are_sent_and_the_others_dead_lettered_with_their_original_bytes() -> None:
    shipped = f.shipped_event(order_id="order-1")
    values: list[bytes | None] = [_json(PLACED), b"not json", json.dumps(NEGATIVE_PRICE).encode(), _json(shipped)]
    relay, fake, dead, metrics = _relay()
    records = _staged(values)
    relay.relay(records)
    assert [EventCodec().decode(sent["value"]).event_id for sent in fake.sent] == [PLACED.event_id, shipped.event_id]
    assert {sent["topic"] for sent in fake.sent} == {"orders.events.t"}
    assert [sent["key"] for sent in fake.sent] == [b"order-1", b"order-1"]
    assert [(record, reason) for record, reason, _ in dead.published] == [
        (records[1], "undecodable"), (records[2], "invalid_event")]
    assert dead.published[1][0].value == values[2]  # the bytes as they came, not re-encoded
    assert (relay.counts.relayed, relay.counts.dead_lettered) == (2, 2)
    assert metrics.dead_letters.labels(reason="invalid_event")._value.get() == 1
    assert metrics.producer_sent.labels(event_type="ORDER_PLACED")._value.get() == 1


def test_a_send_the_broker_refused_is_sent_again_and_only_it() -> None:
    events = [f.placed_event(order_id=f"order-{n}") for n in range(3)]
    relay, fake, dead, _ = _relay(refuse={1})
    relay.relay(_staged([_json(e) for e in events]))
    decoded = [EventCodec().decode(sent["value"]).event_id for sent in fake.sent]
    assert decoded == [events[0].event_id, events[1].event_id, events[2].event_id, events[1].event_id]
    assert relay.counts.relayed == 3 and dead.published == []


def test_a_record_the_broker_refuses_for_good_is_dead_lettered_not_retried_for_ever() -> None:
    """Too large for the events topic (its max.message.bytes below --max-record-bytes): sending it again cannot
    help, and retrying it would hold the partition back for ever."""
    relay, fake, dead, _ = _relay(too_large={1})
    records = _staged([_json(PLACED), _json(f.placed_event(order_id="order-2")), _json(PLACED)])
    relay.relay(records)
    assert len(fake.sent) == 3  # each sent once
    assert [(r.offset, reason) for r, reason, _ in dead.published] == [(1, "invalid_event")]
    assert "too large" in dead.published[0][2] and "max.message.bytes" in dead.published[0][2]
    assert relay.counts.relayed == 2 and relay.counts.dead_lettered == 1


def test_a_dead_letter_topic_that_is_away_is_waited_for_without_sending_the_events_again() -> None:
    relay, fake, dead, _ = _relay(dead_letter_failures=2)
    relay.relay(_staged([_json(PLACED), b"{"]))
    assert len(fake.sent) == 1
    assert [reason for _, reason, _ in dead.published] == ["undecodable"]


def test_a_stop_during_an_outage_leaves_the_batch_unfinished() -> None:
    relay, _, dead, _ = _relay(dead_letter_failures=1_000)
    stop = threading.Event()
    stop.set()
    with pytest.raises(DeadLetterError):
        relay.relay(_staged([b"{"]), stop)
    assert dead.published == []


# -- the group member: commit after the batch -------------------------------------------------------------------

class FakeConsumer:
    """Hands out ``batches`` one per poll, then empty polls; ``stop`` is set once they are all out."""

    def __init__(self, batches: list[dict[TopicPartition, list[Any]]], stop: threading.Event) -> None:
        self._batches = list(batches)
        self._stop = stop
        self.subscribed: list[str] = []
        self.commits: list[dict[TopicPartition, OffsetAndMetadata]] = []
        self.closed = False

    def subscribe(self, topics: list[str]) -> None:
        self.subscribed = topics

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        if not self._batches:
            self._stop.set()
            return {}
        batch = self._batches.pop(0)
        if not self._batches:
            self._stop.set()  # a SIGTERM while this batch is relayed: it is still finished and committed
        return batch

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(STAGING, 0)}

    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self.commits.append(offsets)

    def close(self, autocommit: bool = True) -> None:
        assert not autocommit
        self.closed = True


def _batch(*partitions: list[StagedRecord]) -> dict[TopicPartition, list[Any]]:
    return {TopicPartition(STAGING, records[0].partition): list(records) for records in partitions}


def test_the_batch_in_flight_when_stop_comes_is_relayed_and_committed_per_partition() -> None:
    stop = threading.Event()
    first = _batch(_staged([_json(PLACED), b"{"], partition=0, start=7),
                   _staged([_json(f.placed_event(order_id="order-2"))], partition=2, start=40))
    consumer = FakeConsumer([first], stop)
    relay, fake, dead, metrics = _relay()
    OutboxRelay(consumer, STAGING, relay, max_records=10, metrics=metrics).run(stop)
    assert consumer.subscribed == [STAGING]
    assert consumer.commits == [{TopicPartition(STAGING, 0): OffsetAndMetadata(9, "", -1),
                                 TopicPartition(STAGING, 2): OffsetAndMetadata(41, "", -1)}]
    assert len(fake.sent) == 2 and len(dead.published) == 1
    assert consumer.closed
    assert metrics.last_commit._value.get() > 0


class _Unrelayable(OrderNotifyError):
    """An error retrying cannot help (e.g. the broker refused the topic: not authorized)."""


def test_a_batch_that_could_not_be_relayed_is_not_committed() -> None:
    stop = threading.Event()
    consumer = FakeConsumer([_batch(_staged([_json(PLACED)])), {}], stop)  # no stop asked meanwhile
    relay, _, _, _ = _relay()

    def fail(records: list[Any], stop: threading.Event | None = None) -> None:
        raise _Unrelayable("the broker refused the events topic")

    relay.relay = fail  # type: ignore[method-assign]
    with pytest.raises(_Unrelayable):
        OutboxRelay(consumer, STAGING, relay, max_records=10).run(stop)
    assert consumer.commits == [] and consumer.closed


def test_a_batch_left_in_an_outage_by_a_stop_is_not_committed() -> None:
    stop = threading.Event()
    consumer = FakeConsumer([_batch(_staged([b"{"]))], stop)
    relay, _, dead, _ = _relay(dead_letter_failures=1_000)
    OutboxRelay(consumer, STAGING, relay, max_records=10).run(stop)
    assert consumer.commits == [] and dead.published == [] and consumer.closed


class _BrokerGoneAtCommit(FakeConsumer):
    def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        raise KafkaTimeoutError("Timeout after 30000ms")  # the broker went away during the commit


def test_a_commit_the_broker_did_not_answer_leaves_the_batch_to_be_relayed_again_and_goes_on() -> None:
    stop = threading.Event()
    consumer = _BrokerGoneAtCommit([_batch(_staged([_json(PLACED)])), _batch(_staged([_json(PLACED)]))], stop)
    relay, fake, _, _ = _relay()
    OutboxRelay(consumer, STAGING, relay, max_records=10).run(stop)  # does not raise
    assert len(fake.sent) == 2 and consumer.closed  # the second batch was still read and relayed


class _BrokerGoneAtPoll(FakeConsumer):
    def __init__(self, batches: list[dict[TopicPartition, list[Any]]], stop: threading.Event, failures: int,
                 error: Exception | None = None) -> None:
        super().__init__(batches, stop)
        self.failures, self.polls = failures, 0
        self.error = error or KafkaConnectionError("111 ECONNREFUSED")  # as kafka-python's poll sometimes does

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        self.polls += 1
        if self.polls <= self.failures:
            raise self.error
        return super().poll(timeout_ms, max_records)


@pytest.mark.parametrize("error", [KafkaConnectionError("111 ECONNREFUSED"),
                                   RequestTimedOutError("Request timed out after 30000 ms")],
                         ids=lambda e: type(e).__name__)
def test_a_poll_no_broker_answered_is_polled_again_and_the_relay_goes_on(monkeypatch: pytest.MonkeyPatch,
                                                                         error: Exception) -> None:
    """Before, the error left the relay and the command exited while the broker restarted (or was frozen)."""
    monkeypatch.setattr(relay_module, "POLL_BACKOFF", Backoff(first_s=0.01, cap_s=0.02))
    stop = threading.Event()
    consumer = _BrokerGoneAtPoll([_batch(_staged([_json(PLACED)]))], stop, failures=3, error=error)
    relay, fake, _, _ = _relay()
    OutboxRelay(consumer, STAGING, relay, max_records=10).run(stop)  # does not raise
    assert consumer.polls == 4 and len(fake.sent) == 1 and len(consumer.commits) == 1


def test_a_stop_while_no_broker_answers_polls_ends_the_relay_without_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_module, "POLL_BACKOFF", Backoff(first_s=0.01, cap_s=0.02))
    stop = threading.Event()
    consumer = _BrokerGoneAtPoll([], stop, failures=10**9)
    relay, _, _, _ = _relay()
    threading.Timer(0.2, stop.set).start()
    OutboxRelay(consumer, STAGING, relay, max_records=10).run(stop)  # does not raise
    assert consumer.polls > 1 and consumer.commits == [] and consumer.closed


def test_a_stop_during_a_long_poll_backoff_ends_the_relay_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backoff between polls of an outage waits for ``stop`` too: a SIGTERM is not held for its length."""
    monkeypatch.setattr(relay_module, "POLL_BACKOFF", Backoff(first_s=60.0, cap_s=60.0, jitter=0.0))
    stop = threading.Event()
    consumer = _BrokerGoneAtPoll([], stop, failures=10**9)
    relay, _, _, _ = _relay()
    running = threading.Thread(target=OutboxRelay(consumer, STAGING, relay, max_records=10).run, args=(stop,))
    running.start()
    time.sleep(0.2)  # polled once, in the backoff now
    stop.set()
    running.join(5)
    assert not running.is_alive() and consumer.polls == 1 and consumer.closed


def test_readyz_says_the_broker_is_not_reached_while_the_relay_waits_out_an_outage(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, a relay waiting out an outage stayed ready: /readyz asked only whether it had joined the group."""
    monkeypatch.setattr(relay_module, "POLL_BACKOFF", Backoff(first_s=0.01, cap_s=0.02))
    monkeypatch.setattr(relay_module, "BROKER_SILENCE_S", 0.3)
    stop = threading.Event()
    consumer = _BrokerGoneAtPoll([], stop, failures=10**9)
    outbox_relay = OutboxRelay(consumer, STAGING, _relay()[0], max_records=10)
    outbox_relay.joined = True  # it had joined before the broker went away
    running = threading.Thread(target=outbox_relay.run, args=(stop,))
    running.start()
    try:
        assert outbox_relay.readiness().ready  # within the grace of the first polls
        time.sleep(0.5)
        report = outbox_relay.readiness()
        assert not report.ready and report.failing == ["broker"]
        assert report.details == {"broker": "no successful poll for 0 s"}
    finally:
        stop.set()
        running.join(5)


def test_readyz_is_ready_once_a_poll_was_answered_and_partitions_are_assigned() -> None:
    stop = threading.Event()
    consumer = FakeConsumer([], stop)
    outbox_relay = OutboxRelay(consumer, STAGING, _relay()[0], max_records=10)
    assert outbox_relay.readiness().failing == ["group_joined"]
    outbox_relay.run(stop)
    assert outbox_relay.readiness().ready


def test_batch_offsets_are_each_partitions_next_record() -> None:
    batch = _batch(_staged([b"a", b"b", b"c"], partition=1, start=3))
    assert batch_offsets(batch) == {TopicPartition(STAGING, 1): OffsetAndMetadata(6, "", -1)}


def test_settings_name_the_staging_topic_and_a_group_of_its_own() -> None:
    settings = Settings()
    assert settings.relay_topic == "orders.events.json"
    assert settings.relay_group_id != settings.group_id  # never a member of the consumers' group
    assert dataclasses.replace(settings, relay_topic="x").relay_topic == "x"


def test_a_value_nested_too_deeply_for_the_decoder_is_dead_lettered_not_a_crash() -> None:
    relay, fake, dead, _ = _relay()
    relay.relay(_staged([b"[" * 100_000, _json(PLACED)]))
    assert [reason for _, reason, _ in dead.published] == ["undecodable"]
    assert len(fake.sent) == 1
