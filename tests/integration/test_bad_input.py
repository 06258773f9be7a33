"""Bad input, end to end: every bad record lands on the dead-letter topic with its reason, or the
producer refuses it with an error naming the field; good events around the bad ones are still e-mailed.

The bad Avro records are written with fastavro directly against the published schema (and its
fingerprint), so they get past the wire format and break only the business rules, as a platform bug
would; the others are bytes that are not a published event at all.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form
from kafka import KafkaProducer
from kafka.errors import MessageSizeTooLargeError

from devstack.smtp_capture import SmtpCapture
from ordernotify.config import Settings
from producers.event_producer import OrderEventProducer
from producers.exceptions import EventRefused
from schemas.codec import MAGIC, EventCodec
from schemas.events import OrderEvent, OrderPlaced
from schemas.records import to_record
from schemas.registry import ORDER_EVENT, default_registry
from schemas.validation import MAX_EVENT_BYTES
from tests import factories as f
from tests.consumer_runner import ConsumerRunner
from tests.kafka_reading import read_topic

CVE_2023_27043 = "alice@example.org(<bob@example.com>"
TEN_MB = 10 * 1024 * 1024


# -- writing records the way a buggy platform would ---------------------------------------------------

def _datum(event: OrderEvent) -> dict[str, Any]:
    """The Avro datum of ``event``, as fastavro writes it (payload as a named union branch)."""
    datum: dict[str, Any] = to_record(event)
    datum["payload"] = (f"org.ordernotify.events.{type(event.payload).__name__}", datum["payload"])
    return datum


def _single_object(schema_json: Any, datum: dict[str, Any], fingerprint_of: Any | None = None) -> bytes:
    """``C3 01`` + fingerprint + datum written with fastavro against ``schema_json``, no business rules asked."""
    parsed = fastavro.parse_schema(copy.deepcopy(schema_json))
    fp_schema = parsed if fingerprint_of is None else fastavro.parse_schema(copy.deepcopy(fingerprint_of))
    fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(fp_schema), "CRC-64-AVRO"))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, datum)
    return MAGIC + fp + buffer.getvalue()


def _published() -> Any:
    return json.loads(default_registry().latest(ORDER_EVENT).path.read_text(encoding="utf-8"))


def _schema_valid(event: OrderEvent, **changes: Any) -> bytes:
    """``event`` with dotted-path ``changes`` (``customer.email=...``), written under the published schema."""
    datum = _datum(event)
    for path, value in changes.items():
        target: Any = datum
        *parents, leaf = path.split("__")
        for part in parents:
            target = target[1] if isinstance(target, tuple) else target
            target = target[int(part)] if part.isdigit() else target[part]
        target = target[1] if isinstance(target, tuple) else target
        target[leaf] = value
    return _single_object(_published(), datum)


def _with_unknown_enum_symbol(event: OrderEvent) -> bytes:
    """A copy of the schema with an extra EventType symbol, under that copy's own fingerprint."""
    schema = _published()
    event_type = next(field for field in schema["fields"] if field["name"] == "event_type")
    event_type["type"]["symbols"].append("ORDER_RETURNED")
    datum = _datum(event)
    datum["event_type"] = "ORDER_RETURNED"
    return _single_object(schema, datum)


def _with_wrong_typed_quantity(event: OrderEvent) -> bytes:
    """quantity written as a string, but announced under the published fingerprint."""
    schema = _published()
    payload_types = next(field for field in schema["fields"] if field["name"] == "payload")["type"]
    placed = next(t for t in payload_types if t["name"] == "OrderPlaced")
    line_item = placed["fields"][0]["type"]["items"]
    next(field for field in line_item["fields"] if field["name"] == "quantity")["type"] = "string"
    datum = _datum(event)
    datum["payload"][1]["items"][0]["quantity"] = "two"
    return _single_object(schema, datum, fingerprint_of=_published())


def _truncated(event: OrderEvent) -> bytes:
    """A datum cut off in the middle: the fields after the cut are missing."""
    whole = EventCodec().encode(event)
    return whole[: len(whole) // 2]


def _placed(order_id: str) -> OrderEvent:
    return f.placed_event(order_id=order_id)


def _vat_included(order_id: str) -> OrderEvent:
    """53.97 of items, 4.90 shipping, total 58.87 with 9.40 VAT in it."""
    items = (f.line_item(quantity=2, price_minor=1299), f.line_item("SKU-2", price_minor=2799))
    return f.placed_event(order_id=order_id, items=items, shipping_cost=f.money(490), tax=f.money(940),
                          prices_include_tax=True)


def _with_total(event: OrderEvent, amount_minor: int) -> OrderEvent:
    payload = event.payload
    assert isinstance(payload, OrderPlaced)
    return dataclasses.replace(event, payload=dataclasses.replace(
        payload, total=dataclasses.replace(payload.total, amount_minor=amount_minor)))


def _written_by_v2(event: OrderEvent) -> bytes:
    """``event`` as a v2 writer sent it: no prices_include_tax (read from the sums), no discount."""
    v2 = json.loads(default_registry().version(ORDER_EVENT, 2).path.read_text(encoding="utf-8"))
    return _single_object(v2, _datum(event))


@dataclasses.dataclass(frozen=True)
class Bad:
    name: str
    value: Callable[[str], bytes]  # order id -> record value
    reason: str
    detail: str  # must appear in dlq.detail


BAD_RECORDS = [
    Bad("random bytes", lambda o: b"\x8f\x00\xffrandom \x13 bytes", "undecodable", "not Avro single-object"),
    Bad("empty value", lambda o: b"", "undecodable", "not Avro single-object"),
    Bad("truncated datum (missing fields)", lambda o: _truncated(_placed(o)), "undecodable", "do not decode"),
    Bad("trailing garbage", lambda o: EventCodec().encode(_placed(o)) + b"\x00\x01", "undecodable", "trailing"),
    Bad("wrong-typed field", lambda o: _with_wrong_typed_quantity(_placed(o)), "undecodable", "do not decode"),
    Bad("unknown fingerprint", lambda o: MAGIC + b"\x11" * 8 + b"\x02", "unknown_schema", "fingerprint"),
    Bad("unknown enum symbol", lambda o: _with_unknown_enum_symbol(_placed(o)), "unknown_schema", "fingerprint"),
    Bad("negative quantity", lambda o: _schema_valid(_placed(o), payload__items__0__quantity=-2),
        "invalid_event", "payload.items[0].quantity"),
    Bad("negative price", lambda o: _schema_valid(_placed(o), payload__items__0__unit_price__amount_minor=-1299),
        "invalid_event", "payload.items[0].unit_price.amount_minor"),
    Bad("unknown currency", lambda o: _schema_valid(
        f.placed_event(order_id=o, items=(f.line_item(currency="XYZ"),))), "invalid_event", "currency"),
    Bad("occurred_at in 2999", lambda o: _schema_valid(_placed(o), occurred_at=datetime(2999, 1, 1, tzinfo=UTC)),
        "invalid_event", "occurred_at"),
    Bad("occurred_at in 1970", lambda o: _schema_valid(_placed(o), occurred_at=datetime(1970, 1, 1, tzinfo=UTC)),
        "invalid_event", "occurred_at"),
    Bad("empty e-mail", lambda o: _schema_valid(_placed(o), customer__email=""), "invalid_event", "customer.email"),
    Bad("CVE-2023-27043 address", lambda o: _schema_valid(_placed(o), customer__email=CVE_2023_27043),
        "invalid_event", "customer.email"),
    Bad("two addresses", lambda o: _schema_valid(_placed(o), customer__email="a@example.org, b@example.com"),
        "invalid_event", "customer.email"),
    Bad("encoded word in the address", lambda o: _schema_valid(
        _placed(o), customer__email="=?utf-8?q?bob=40evil.example=0A?=@example.org"), "invalid_event",
        "customer.email"),
    Bad("CR/LF in display name", lambda o: _schema_valid(
        _placed(o), customer__display_name="Ada\r\nBcc: evil@example.com"), "invalid_event",
        "customer.display_name"),
    Bad("CR/LF in order id", lambda o: _schema_valid(_placed(o), order_id="1\r\nBcc: evil@example.com"),
        "invalid_event", "order_id"),
    Bad("product name over 1000 characters", lambda o: _schema_valid(_placed(o), payload__items__0__name="x" * 5000),
        "invalid_event", "payload.items[0].name"),
    Bad("locale that is no tag", lambda o: _schema_valid(_placed(o), customer__locale="not a locale!"),
        "invalid_event", "customer.locale"),
    Bad("VAT-included prices with the tax added", lambda o: _schema_valid(
        _vat_included(o), payload__prices_include_tax=False), "sums_do_not_add_up",
        "payload.total: total 58.87 \u2260 subtotal 53.97 \u2212 discount 0.00 + shipping_cost 4.90 + tax 9.40 "
        "= 68.27 EUR (tax added: prices_include_tax is false)"),
    Bad("subtotal that is not the items'", lambda o: _schema_valid(_placed(o), payload__subtotal__amount_minor=1),
        "sums_do_not_add_up", "payload.subtotal: subtotal 0.01"),
    Bad("discount not taken off", lambda o: _schema_valid(
        _placed(o), payload__discount={"amount": {"amount_minor": 500, "currency": "EUR"}, "code": "WELCOME5",
                                       "description": None}), "sums_do_not_add_up", "discount 5.00"),
    Bad("v2 order that adds up neither way", lambda o: _written_by_v2(_with_total(_vat_included(o), 1)),
        "sums_do_not_add_up", "prices_include_tax is not given"),
]


def _produce_raw(settings: Settings, records: list[tuple[bytes, bytes]], **options: Any) -> None:
    producer = KafkaProducer(**settings.kafka_client_options(), acks="all", **options)
    try:
        for key, value in records:
            producer.send(settings.events_topic, key=key, value=value).get(10)
    finally:
        producer.close()


@pytest.mark.integration
def test_every_bad_record_is_dead_lettered_with_its_reason_and_good_ones_are_still_sent(
    settings: Settings, smtp_server: SmtpCapture
) -> None:
    codec = EventCodec()
    records: list[tuple[bytes, bytes]] = []
    good: list[OrderEvent] = []
    bad_values: dict[bytes, bytes] = {}
    for i, bad in enumerate(BAD_RECORDS):
        ok = f.placed_event(order_id=f"G-{i}", customer=f.make_customer(email=f"good{i}@example.org"))
        good.append(ok)
        records.append((ok.order_id.encode(), codec.encode(ok)))
        bad_values[f"B-{i}".encode()] = bad.value(f"B-{i}")
        records.append((f"B-{i}".encode(), bad_values[f"B-{i}".encode()]))
    _produce_raw(settings, records)

    with ConsumerRunner(settings) as runner:
        runner.wait_handled(len(records))
        sent = smtp_server.wait_for(len(good))
    dead = read_topic(settings, settings.dlq_topic, expected=len(BAD_RECORDS))

    by_key = {record.key: record for record in dead}
    assert len(dead) == len(by_key) == len(BAD_RECORDS)
    for i, bad in enumerate(BAD_RECORDS):
        key = f"B-{i}".encode()
        record = by_key[key]
        headers = {k: v.decode() for k, v in record.headers}
        assert (bad.name, headers["dlq.reason"]) == (bad.name, bad.reason)
        assert bad.detail in headers["dlq.detail"], (bad.name, headers["dlq.detail"])
        assert (record.value or b"") == bad_values[key], bad.name  # the original bytes, kept for replay
    assert sorted(m.rcpt_tos for m in sent) == sorted((e.customer.email,) for e in good)
    assert CVE_2023_27043 not in {r for m in sent for r in m.rcpt_tos}


@pytest.mark.integration
def test_a_ten_megabyte_record_is_refused_by_the_kafka_producer_with_a_clear_error(settings: Settings) -> None:
    """kafka-python's default max_request_size (1 MiB) refuses it before anything reaches the broker.

    (Apache Kafka's broker refuses it too: message.max.bytes is about 1 MiB by default. The dev broker
    takes one when a client raises its limit, see tests/integration/test_large_records.py;
    OrderEventProducer refuses any event over MAX_EVENT_BYTES, see the next tests.)
    """
    with pytest.raises(MessageSizeTooLargeError, match="max_request_size"):
        _produce_raw(settings, [(b"BIG", MAGIC + b"\x00" * TEN_MB)])
    assert read_topic(settings, settings.events_topic, expected=0, timeout_s=1.0) == []


# -- the producer side: refused before sending, naming the field (no broker) ---------------------------

class _RecordingKafkaProducer:
    """Stands in for KafkaProducer: anything handed to it would have been sent."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - must never be reached
        self.sent.append((args, kwargs))
        raise AssertionError("a refused event reached Kafka")

    def flush(self, timeout: float | None = None) -> None:
        pass


def _big_but_field_valid() -> OrderEvent:
    """Every field within its own limit (500 items, 1000 characters each), yet well over a Kafka record."""
    items = tuple(f.line_item(sku=f"{i:04d}" + "S" * 996, name="é" * 1000) for i in range(500))
    return f.placed_event(items=items)


REFUSED = [
    ("negative quantity", lambda: f.placed_event(items=(f.line_item(quantity=-1),)), "payload.items[0].quantity"),
    ("zero quantity", lambda: f.shipped_event(items=(f.parcel_item(quantity=0),)), "payload.items[0].quantity"),
    ("negative price", lambda: f.placed_event(items=(f.line_item(price_minor=-5),)),
     "payload.items[0].unit_price.amount_minor"),
    ("unknown currency", lambda: f.placed_event(items=(f.line_item(currency="XYZ"),)),
     "payload.items[0].unit_price.currency"),
    ("occurred_at in 2999", lambda: f.placed_event(occurred_at=datetime(2999, 1, 1, tzinfo=UTC)), "occurred_at"),
    ("occurred_at in 1970", lambda: f.placed_event(occurred_at=datetime(1970, 1, 1, tzinfo=UTC)), "occurred_at"),
    ("empty e-mail", lambda: f.placed_event(customer=f.make_customer(email="")), "customer.email"),
    ("CVE-2023-27043 address", lambda: f.placed_event(customer=f.make_customer(email=CVE_2023_27043)),
     "customer.email"),
    ("display name and address", lambda: f.placed_event(customer=f.make_customer(email="Ada <ada@example.org>")),
     "customer.email"),
    ("encoded word in the address",
     lambda: f.placed_event(customer=f.make_customer(email="=?utf-8?q?x=0A?=@example.org")), "customer.email"),
    ("CR/LF in display name",
     lambda: f.placed_event(customer=f.make_customer(display_name="Ada\r\nBcc: evil@example.com")),
     "customer.display_name"),
    ("CR/LF in order id", lambda: f.placed_event(order_id="1\nBcc: evil@example.com"), "order_id"),
    ("CR/LF in carrier", lambda: f.shipped_event(carrier="DHL\r\nBcc: evil@example.com"), "payload.carrier"),
    ("locale that is no tag", lambda: f.placed_event(customer=f.make_customer(locale="../../etc")),
     "customer.locale"),
    ("event id that is no UUID", lambda: f.placed_event(event_id="42"), "event_id"),
    ("no items", lambda: f.shipped_event(items=()), "payload.items"),
    ("a 10 MB product name", lambda: f.placed_event(items=(f.line_item(name="x" * TEN_MB),)),
     "payload.items[0].name"),
    ("javascript order URL", lambda: f.placed_event(order_url="javascript:alert(1)"), "order_url"),
]


@pytest.mark.parametrize(("name", "make", "field"), REFUSED, ids=[r[0] for r in REFUSED])
def test_the_producer_refuses_a_bad_event_naming_the_field(
    name: str, make: Callable[[], OrderEvent], field: str
) -> None:
    kafka = _RecordingKafkaProducer()
    producer = OrderEventProducer(Settings(), producer=kafka)
    try:
        with pytest.raises(EventRefused) as refused:
            producer.send(make())
    finally:
        producer.close()
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")
    assert not refused.value.retriable
    assert kafka.sent == []


def test_the_producer_refuses_an_event_too_big_for_one_kafka_record_before_kafka_does() -> None:
    event = _big_but_field_valid()
    assert len(EventCodec().encode(event)) > MAX_EVENT_BYTES  # every field rule passes, the size does not
    kafka = _RecordingKafkaProducer()
    producer = OrderEventProducer(Settings(), producer=kafka)
    try:
        with pytest.raises(EventRefused, match=rf"the encoded event is \d+ bytes; at most {MAX_EVENT_BYTES}"):
            producer.send(event)
    finally:
        producer.close()
    assert kafka.sent == []
