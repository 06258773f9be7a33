"""OrderEventProducer against a fake KafkaProducer: key, headers, refusal before send, failures surfaced."""

from __future__ import annotations

import dataclasses
import gc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.future import Future
from kafka.producer.future import RecordMetadata
from kafka.structs import TopicPartition

from ordernotify.config import Settings
from producers.event_producer import DeliveryReport, OrderEventProducer
from producers.exceptions import DeliveryFailed, EventRefused, ProducerError, WouldBlock
from producers.json_lines import parse_line
from schemas.codec import EventCodec, PreferencesCodec
from schemas.events import CustomerPreferences, OrderEvent, OrderPlaced
from tests import factories as f

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples" / "events.jsonl"
SHIPPED = parse_line(EXAMPLES.read_text(encoding="utf-8").splitlines()[3])  # times relative to now
assert isinstance(SHIPPED, OrderEvent)
SETTINGS = Settings(events_topic="orders.events.t", preferences_topic="customers.preferences.t", produce_timeout_s=0.05)


class FakeFuture(Future):
    def get(self, timeout: float | None = None) -> Any:
        if not self.is_done:
            raise KafkaTimeoutError(f"Timeout after waiting for {timeout} secs.")
        if self.failed():
            raise self.exception
        return self.value


class FakeKafkaProducer:
    """``mode``: "ack" (acknowledge at once), "silent" (never answer), "error" (broker refuses)."""

    def __init__(self, mode: str = "ack") -> None:
        self.mode = mode
        self.sent: list[dict[str, Any]] = []
        self.pending: list[FakeFuture] = []
        self.flushed = 0
        self.closed = False

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> FakeFuture:
        offset = len(self.sent)
        partition = 2
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": headers})
        future = FakeFuture()
        if self.mode == "ack":
            tp = TopicPartition(topic, partition)
            future.success(RecordMetadata(topic, partition, tp, offset, 0, None, len(key or b""), len(value or b""), 0))
        elif self.mode == "error":
            future.failure(KafkaError("NOT_ENOUGH_REPLICAS"))
        else:
            self.pending.append(future)
        return future

    def flush(self, timeout: float | None = None) -> None:
        """Like the real client once delivery_timeout_ms has passed: unanswered batches expire."""
        self.flushed += 1
        for future in self.pending:
            if not future.is_done:
                future.failure(KafkaTimeoutError("Expiring 1 record(s): delivery timeout elapsed"))
        self.pending.clear()

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def _producer(mode: str = "ack") -> tuple[OrderEventProducer, FakeKafkaProducer]:
    fake = FakeKafkaProducer(mode)
    return OrderEventProducer(SETTINGS, producer=fake), fake


def test_send_and_wait_keys_by_order_id_with_documented_headers() -> None:
    producer, fake = _producer()
    with producer:
        report = producer.send_and_wait(SHIPPED)
    assert report == DeliveryReport("orders.events.t", 2, 0, SHIPPED.event_id)
    (record,) = fake.sent
    assert record["topic"] == "orders.events.t"
    assert record["key"] == SHIPPED.order_id.encode("utf-8")
    assert record["headers"] == [
        ("event_type", b"ORDER_SHIPPED"),
        ("content-type", b"application/vnd.ordernotify.order-event+avro"),
    ]
    assert EventCodec().decode(record["value"]) == SHIPPED


def test_invalid_event_is_refused_before_anything_is_sent() -> None:
    producer, fake = _producer()
    bad = dataclasses.replace(SHIPPED, customer=dataclasses.replace(SHIPPED.customer, email="a@example.org(<b@x.com>"))
    with producer, pytest.raises(EventRefused) as caught:
        producer.send(bad)
    assert caught.value.field == "customer.email"
    assert not caught.value.retriable
    assert fake.sent == []


def test_order_whose_sums_do_not_add_up_is_refused_naming_the_fields_and_numbers() -> None:
    producer, fake = _producer()
    items = (f.line_item(quantity=2, price_minor=1299), f.line_item("SKU-2", price_minor=2799))
    vat_included = f.placed_event(items=items,
                                  shipping_cost=f.money(490), tax=f.money(940), prices_include_tax=True)
    assert isinstance(vat_included.payload, OrderPlaced)
    shown_as_added = dataclasses.replace(vat_included, payload=dataclasses.replace(vat_included.payload,
                                                                                   prices_include_tax=False))
    with producer:
        with pytest.raises(EventRefused) as caught:
            producer.send(shown_as_added)
        assert fake.sent == []
        producer.send(vat_included)  # the same order, saying that its prices include the tax, adds up
    assert caught.value.field == "payload.total"
    assert caught.value.problem.startswith(
        "total 58.87 \u2260 subtotal 53.97 \u2212 discount 0.00 + shipping_cost 4.90 + tax 9.40 = 68.27 EUR")
    assert len(fake.sent) == 1


def test_no_acknowledgement_is_delivery_failed_chained_to_the_kafka_timeout() -> None:
    producer, fake = _producer("silent")
    with pytest.raises(DeliveryFailed) as caught:
        producer.send_and_wait(SHIPPED, timeout=0.01)
    assert caught.value.retriable
    assert isinstance(caught.value.__cause__, KafkaTimeoutError)
    assert SHIPPED.event_id in str(caught.value)
    producer.close()  # the caller has seen the failure: close does not raise it again


def test_broker_error_is_delivery_failed() -> None:
    producer, _ = _producer("error")
    with pytest.raises(DeliveryFailed) as caught:
        producer.send_and_wait(SHIPPED)
    assert isinstance(caught.value.__cause__, KafkaError)
    producer.close()


def test_unobserved_failure_surfaces_from_flush() -> None:
    producer, fake = _producer("silent")
    handle = producer.send(SHIPPED)  # nobody waits on it
    assert not handle.done()
    with pytest.raises(DeliveryFailed, match="1 record"):
        producer.flush()
    assert handle.failed()
    producer.close()  # reported once, not twice
    assert fake.flushed == 2


def test_unobserved_failure_surfaces_from_close() -> None:
    producer, _ = _producer("error")
    producer.send(SHIPPED)
    with pytest.raises(DeliveryFailed):
        producer.close()


def test_send_is_non_blocking_and_returns_a_handle() -> None:
    producer, _ = _producer()
    with producer:
        handles = [producer.send(dataclasses.replace(SHIPPED, order_id=f"o-{i}")) for i in range(3)]
        assert [h.result().offset for h in handles] == [0, 1, 2]


def test_publish_preferences_keys_by_customer_id() -> None:
    producer, fake = _producer()
    prefs = CustomerPreferences("c-00042", False, datetime(2026, 11, 23, 8, 30, tzinfo=UTC))
    with producer:
        report = producer.publish_preferences(prefs)
    assert report.topic == "customers.preferences.t" and report.event_id is None
    (record,) = fake.sent
    assert record["key"] == b"c-00042"
    assert record["headers"] == [("content-type", b"application/vnd.ordernotify.customer-preferences+avro")]
    assert PreferencesCodec().decode(record["value"]) == prefs


def test_empty_customer_id_is_refused() -> None:
    producer, fake = _producer()
    with producer, pytest.raises(EventRefused):
        producer.publish_preferences(CustomerPreferences("", True, datetime.now(UTC)))
    assert fake.sent == []


def test_send_after_close_is_an_error() -> None:
    producer, fake = _producer()
    producer.close()
    with pytest.raises(ProducerError):
        producer.send(SHIPPED)
    assert not fake.closed  # injected: its creator closes it


def test_unclosed_producer_warns() -> None:
    producer, _ = _producer()
    with pytest.warns(ResourceWarning, match="Unclosed OrderEventProducer"):
        del producer
        gc.collect()


def test_kafka_options() -> None:
    options = OrderEventProducer._producer_options(Settings(produce_timeout_s=10))
    assert options["acks"] == "all"
    assert options["enable_idempotence"] is True
    assert options["delivery_timeout_ms"] >= options["request_timeout_ms"] + options["linger_ms"]
    assert options["max_block_ms"] == 10000


def test_the_producer_bootstraps_within_the_connect_timeout_not_the_acknowledgement_timeout() -> None:
    options = OrderEventProducer._producer_options(Settings(produce_timeout_s=30, kafka_connect_timeout_s=2))
    assert options["bootstrap_timeout_ms"] == 2000
    assert options["bootstrap_timeout_ms"] == Settings(kafka_connect_timeout_s=2).kafka_producer_options()[
        "bootstrap_timeout_ms"]


def test_bulk_options_fill_batches_but_keep_the_delivery_guarantees() -> None:
    plain = OrderEventProducer._producer_options(Settings(produce_timeout_s=10))
    bulk = OrderEventProducer._producer_options(Settings(produce_timeout_s=10), bulk=True)
    assert bulk["linger_ms"] == 50 and bulk["batch_size"] == 256 * 1024
    assert "batch_size" not in plain and plain["linger_ms"] == 5
    assert bulk["delivery_timeout_ms"] >= bulk["request_timeout_ms"] + bulk["linger_ms"]
    for key in ("acks", "enable_idempotence", "max_request_size", "max_block_ms"):
        assert bulk[key] == plain[key]


def test_event_is_an_order_event() -> None:
    assert isinstance(SHIPPED, OrderEvent)


def test_an_injected_client_is_never_said_to_send_without_waiting() -> None:
    producer, _fake = _producer()
    with producer:
        assert not producer.sends_without_waiting(SETTINGS.events_topic)


def test_a_shorter_linger_keeps_the_delivery_guarantees() -> None:
    plain = OrderEventProducer._producer_options(Settings(produce_timeout_s=10))
    short = OrderEventProducer._producer_options(Settings(produce_timeout_s=10), linger_ms=2)
    assert short["linger_ms"] == 2 and plain["linger_ms"] == 5
    assert short["delivery_timeout_ms"] >= short["request_timeout_ms"] + short["linger_ms"]
    timing = {"linger_ms", "delivery_timeout_ms"}
    assert {key: value for key, value in short.items() if key not in timing} == {
        key: value for key, value in plain.items() if key not in timing}


class _Metadata:
    def __init__(self, partitions: set[int] | None) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions


def _owned(partitions: set[int] | None) -> tuple[OrderEventProducer, FakeKafkaProducer]:
    """A producer as if it had made its client itself (what the gateway's is), with the client's metadata."""
    producer, fake = _producer()
    fake._metadata = _Metadata(partitions)  # type: ignore[attr-defined]
    producer._owns_producer = True
    return producer, fake


def test_a_send_that_may_not_block_is_made_when_the_client_holds_the_partitions() -> None:
    producer, fake = _owned({0, 1, 2})
    with producer:
        assert producer.sends_without_waiting(SETTINGS.events_topic)
        producer.send(SHIPPED, may_block=False).result()
    assert len(fake.sent) == 1


@pytest.mark.parametrize("why", ["no metadata yet", "client to be replaced"])
def test_a_send_that_may_not_block_is_refused_when_it_would_wait(why: str) -> None:
    """Checked at the send itself, not only by the caller beforehand: the client's I/O thread can mark the client
    stale between the two, and replacing it means a new client, which an event loop must not wait for."""
    producer, fake = _owned(None if why == "no metadata yet" else {0})
    producer._stale_client = why == "client to be replaced"
    with pytest.raises(WouldBlock):
        producer.send(SHIPPED, may_block=False)
    assert fake.sent == []
    producer._stale_client = False
    producer.close()


def test_a_record_the_broker_refuses_as_too_large_is_refused_for_good_not_a_retriable_failure() -> None:
    from kafka.errors import MessageSizeTooLargeError

    producer, fake = _producer(mode="silent")
    with producer:  # the failure was seen through result(): closing does not report it again
        handle = producer.send(SHIPPED)
        fake.pending[0].failure(MessageSizeTooLargeError("MESSAGE_TOO_LARGE"))
        with pytest.raises(EventRefused, match="too large .*max.message.bytes"):
            handle.result()
