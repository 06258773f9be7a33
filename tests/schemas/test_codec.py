"""Codec tables: exact round trips per event type, and bad bytes or events that must raise our own errors."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from producers.json_lines import parse_line
from schemas.codec import MAGIC, AvroCodec, EventCodec, PreferencesCodec
from schemas.events import (
    CustomerPreferences,
    EventType,
    LineItem,
    Money,
    OrderEvent,
    OrderPlaced,
    PriceError,
)
from schemas.exceptions import (
    DecodeError,
    EventValidationError,
    InvalidEventError,
    SumsDoNotAddUpError,
    UnknownSchemaError,
)
from schemas.records import event_from_record, to_json_record, to_record
from schemas.registry import ORDER_EVENT
from schemas.sums import tax_included
from tests import factories

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples" / "events.jsonl"


def _examples() -> dict[EventType, OrderEvent]:
    events = {}
    for line in EXAMPLES.read_text(encoding="utf-8").splitlines():
        value = parse_line(line)  # the examples' times are relative to now
        if isinstance(value, OrderEvent):
            events[value.event_type] = value
    return events


EVENTS = _examples()
PLACED = EVENTS[EventType.ORDER_PLACED]


def _raw_bytes(event: OrderEvent, version: int | None = None) -> bytes:
    """Encode without business-rule validation: what a careless producer in another language could send."""
    datum = to_record(event)
    datum["payload"] = (f"org.ordernotify.events.{type(event.payload).__name__}", datum["payload"])
    return AvroCodec(ORDER_EVENT).encode(datum, version)


@pytest.mark.parametrize("event_type", list(EventType), ids=lambda t: t.value)
def test_round_trip_per_event_type(event_type: EventType) -> None:
    event = EVENTS[event_type]
    data = EventCodec().encode(event)
    assert data[:2] == MAGIC
    assert EventCodec().decode(data) == event


def test_every_event_type_has_an_example() -> None:
    assert set(EVENTS) == set(EventType)


def test_json_record_round_trip() -> None:
    for event in EVENTS.values():
        assert event_from_record(json.loads(json.dumps(to_json_record(event)))) == event


# An order as v1 and v2 writers sent it: no discount, no word on whether the prices include the tax.
OLD_PLACED = dataclasses.replace(
    PLACED, order_url=None,
    payload=dataclasses.replace(PLACED.payload, prices_include_tax=None, discount=None, tax=Money(2799, "GBP"),
                                total=Money(13996 + 2799, "GBP")),
)


@pytest.mark.parametrize("version", [1, 2])
def test_old_writers_decode_into_v3_saying_nothing_on_tax_and_no_discount(version: int) -> None:
    codec = EventCodec()
    old_bytes = codec.encode(OLD_PLACED, version=version)
    assert old_bytes[2:10] != codec.encode(OLD_PLACED)[2:10]  # a different writer fingerprint
    decoded = codec.decode(old_bytes)
    assert isinstance(decoded.payload, OrderPlaced)
    assert decoded.payload.prices_include_tax is None and not tax_included(decoded.payload)  # tax added: 139.96+27.99
    assert decoded.payload.discount is None
    assert decoded.order_url is None
    assert decoded == OLD_PLACED


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_writers_vat_order_reads_as_tax_included_and_is_not_dead_lettered(version: int) -> None:
    """A VAT shop before v3 (total = subtotal + shipping, tax > 0) could not say so: its sums say it."""
    vat_shop = dataclasses.replace(OLD_PLACED, payload=dataclasses.replace(
        OLD_PLACED.payload, tax=Money(2333, "GBP"), total=Money(13996, "GBP")))
    decoded = EventCodec().decode(_raw_bytes(vat_shop, version=version))
    assert isinstance(decoded.payload, OrderPlaced) and tax_included(decoded.payload)


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_writers_order_that_adds_up_neither_way_is_dead_lettered_as_sums(version: int) -> None:
    wrong = dataclasses.replace(OLD_PLACED, payload=dataclasses.replace(OLD_PLACED.payload, total=Money(1, "GBP")))
    with pytest.raises(SumsDoNotAddUpError) as caught:
        EventCodec().decode(_raw_bytes(wrong, version=version))
    assert caught.value.reason == "sums_do_not_add_up"
    assert "(tax added: prices_include_tax is not given)" in str(caught.value)


def test_v3_round_trips_the_discount_and_tax_included() -> None:
    assert isinstance(PLACED.payload, OrderPlaced)
    assert PLACED.payload.prices_include_tax is True
    assert PLACED.payload.discount is not None and PLACED.payload.discount.code == "TENOFF"
    assert EventCodec().decode(EventCodec().encode(PLACED)) == PLACED


def test_decode_of_sums_that_do_not_add_up_names_the_fields() -> None:
    assert isinstance(PLACED.payload, OrderPlaced)
    wrong = dataclasses.replace(PLACED, payload=dataclasses.replace(PLACED.payload, prices_include_tax=False))
    with pytest.raises(SumsDoNotAddUpError) as caught:
        EventCodec().decode(_raw_bytes(wrong))
    assert isinstance(caught.value, InvalidEventError)
    assert caught.value.reason == "sums_do_not_add_up"
    detail = str(caught.value)
    for field in ("payload.total", "subtotal 139.96", "discount 10.00", "shipping_cost 0.00", "tax 21.66",
                  "prices_include_tax is false"):
        assert field in detail


def test_preferences_round_trip() -> None:
    prefs = CustomerPreferences("c-1", False, datetime(2026, 11, 23, 8, 30, tzinfo=UTC))
    assert PreferencesCodec().decode(PreferencesCodec().encode(prefs)) == prefs


def test_unknown_fingerprint() -> None:
    data = EventCodec().encode(PLACED)
    with pytest.raises(UnknownSchemaError, match="fingerprint"):
        EventCodec().decode(MAGIC + b"\x01\x02\x03\x04\x05\x06\x07\x08" + data[10:])


def test_preferences_fingerprint_is_not_an_order_event() -> None:
    prefs = PreferencesCodec().encode(CustomerPreferences("c-1", True, datetime(2026, 1, 1, tzinfo=UTC)))
    with pytest.raises(UnknownSchemaError):
        EventCodec().decode(prefs)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: data[:10], id="header-only"),
        pytest.param(lambda data: data[:5], id="short-header"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: b"\x00\x01" + data[2:], id="wrong-magic"),
        pytest.param(lambda data: json.dumps({"event_type": "ORDER_PLACED"}).encode(), id="json"),
        pytest.param(lambda data: data[:10] + random.Random(7).randbytes(200), id="random-body"),
        pytest.param(lambda data: data + b"\x00", id="trailing-byte"),
    ],
)
def test_bad_bytes_raise_decode_error(mangle: Callable[[bytes], bytes]) -> None:
    with pytest.raises(DecodeError):
        EventCodec().decode(mangle(EventCodec().encode(PLACED)))


def test_trailing_bytes_are_named() -> None:
    with pytest.raises(DecodeError, match="trailing"):
        EventCodec().decode(EventCodec().encode(PLACED) + b"\x00\x00")


def _placed_payload(**changes: Any) -> Callable[[OrderEvent], OrderEvent]:
    def change(event: OrderEvent) -> OrderEvent:
        assert isinstance(event.payload, OrderPlaced)
        return dataclasses.replace(event, payload=dataclasses.replace(event.payload, **changes))

    return change


def _first_item(**changes: Any) -> Callable[[OrderEvent], OrderEvent]:
    def change(event: OrderEvent) -> OrderEvent:
        assert isinstance(event.payload, OrderPlaced)
        first: LineItem = dataclasses.replace(event.payload.items[0], **changes)
        return dataclasses.replace(event, payload=dataclasses.replace(event.payload, items=(first,)))

    return change


def _customer(**changes: Any) -> Callable[[OrderEvent], OrderEvent]:
    return lambda event: dataclasses.replace(event, customer=dataclasses.replace(event.customer, **changes))


BAD_EVENTS = [
    ("negative-quantity", _first_item(quantity=-1), "payload.items[0].quantity"),
    ("zero-quantity", _first_item(quantity=0), "payload.items[0].quantity"),
    ("negative-price", _first_item(unit_price=Money(-100, "GBP")), "payload.items[0].unit_price.amount_minor"),
    ("unknown-currency", _placed_payload(total=Money(100, "XYZ")), "payload.total.currency"),
    ("empty-email", _customer(email=""), "customer.email"),
    ("smuggled-address", _customer(email="alice@example.org(<bob@example.com>"), "customer.email"),
    ("display-name-crlf", _customer(display_name="Zoë\r\nBcc: victim@example.com"), "customer.display_name"),
    ("display-name-lf", _customer(display_name="Zoë\nHartley"), "customer.display_name"),
    ("far-future", lambda e: dataclasses.replace(e, occurred_at=datetime(2100, 1, 1, tzinfo=UTC)),
     "occurred_at"),
    ("epoch-1970", lambda e: dataclasses.replace(e, occurred_at=datetime(1970, 1, 1, tzinfo=UTC)),
     "occurred_at"),
    ("type-payload-mismatch", lambda e: dataclasses.replace(e, event_type=EventType.ORDER_SHIPPED), "payload"),
    ("not-a-uuid", lambda e: dataclasses.replace(e, event_id="42"), "event_id"),
    ("empty-order-id", lambda e: dataclasses.replace(e, order_id=""), "order_id"),
    ("no-items", _placed_payload(items=()), "payload.items"),
    ("ftp-order-url", lambda e: dataclasses.replace(e, order_url="ftp://shop.example/o"), "order_url"),
]


@pytest.mark.parametrize(("mutate", "field"), [pytest.param(m, f, id=i) for i, m, f in BAD_EVENTS])
def test_encode_refuses_rule_breakers_naming_the_field(mutate: Callable[[OrderEvent], OrderEvent], field: str) -> None:
    with pytest.raises(EventValidationError) as caught:
        EventCodec().encode(mutate(PLACED))
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("mutate", "field"), [pytest.param(m, f, id=i) for i, m, f in BAD_EVENTS if i != "not-a-uuid"]
)
def test_decode_rejects_rule_breakers_as_invalid_event(mutate: Callable[[OrderEvent], OrderEvent], field: str) -> None:
    with pytest.raises(InvalidEventError) as caught:
        EventCodec().decode(_raw_bytes(mutate(PLACED)))
    assert str(caught.value).startswith(f"{field}:")
    assert caught.value.reason == "invalid_event"


def test_decode_of_a_non_uuid_event_id_is_undecodable() -> None:
    # fastavro converts the uuid logical type while reading, so this fails before validation.
    with pytest.raises(DecodeError, match="UUID"):
        EventCodec().decode(_raw_bytes(dataclasses.replace(PLACED, event_id="42")))


def test_price_error_currency_mismatch() -> None:
    event = EVENTS[EventType.PRICE_ERROR]
    assert isinstance(event.payload, PriceError)
    bad = dataclasses.replace(event, payload=dataclasses.replace(event.payload, correct_price=Money(1299, "EUR")))
    with pytest.raises(EventValidationError) as caught:
        EventCodec().encode(bad)
    assert caught.value.field == "payload.correct_price"


def test_email_error_does_not_repeat_the_address() -> None:
    with pytest.raises(EventValidationError) as caught:
        EventCodec().encode(_customer(email="alice@example.org(<bob@example.com>")(PLACED))
    assert "example" not in str(caught.value)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("event_type",), "ORDER_LOST", "event_type"),
        (("payload", "resolution"), "MAYBE", "payload.resolution"),
    ],
)
def test_unknown_enum_symbol_in_json(path: tuple[str, ...], value: str, field: str) -> None:
    data = to_json_record(EVENTS[EventType.PRICE_ERROR])
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(EventValidationError) as caught:
        event_from_record(data)
    assert caught.value.field == field
    assert "unknown value" in caught.value.problem


def test_a_key_that_is_not_a_string_is_named_as_not_a_field_of_its_record() -> None:
    """A mapping built in code (not JSON, not Avro) may hold one: the error names it under its path."""
    data = to_json_record(EVENTS[EventType.PRICE_ERROR])
    data["payload"][7] = "x"
    with pytest.raises(EventValidationError) as caught:
        event_from_record(data)
    assert (caught.value.field, caught.value.problem) == ("payload.7", "is not a field of this record")


def test_a_refund_of_an_amount_alone_is_valid_and_kept_whole() -> None:
    """Money given back for the order rather than for items (goodwill, a price corrected after the sale): before,
    the contract refused it ("name the refunded items, or set shipping_refunded") and the customer never heard."""
    refund = factories.refund_event(items=(), shipping_refunded=False)
    codec = EventCodec()
    assert codec.decode(codec.encode(refund)).payload == refund.payload
