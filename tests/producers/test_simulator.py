"""The simulator: reproducible, valid, realistic mixes of order lifecycles."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from consumers.deliver.catalogs import available_languages
from producers.simulator import simulate_orders
from schemas.codec import EventCodec
from schemas.events import (
    DeliveryProblem,
    DeliveryProblemKind,
    EventType,
    OrderCancelled,
    OrderEvent,
    OrderPlaced,
    OrderShipped,
    PriceError,
    PriceResolution,
    RefundIssued,
)
from schemas.validation import validate_event
from templates import TEMPLATE_DIR

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def events() -> list[OrderEvent]:
    return simulate_orders(200, seed=3, now=NOW)


def _by_order(events: list[OrderEvent]) -> dict[str, list[OrderEvent]]:
    orders: dict[str, list[OrderEvent]] = defaultdict(list)
    for event in events:
        orders[event.order_id].append(event)
    return orders


def test_deterministic_per_seed() -> None:
    assert simulate_orders(40, seed=1, now=NOW) == simulate_orders(40, seed=1, now=NOW)
    assert simulate_orders(40, seed=1, now=NOW) != simulate_orders(40, seed=2, now=NOW)


def test_zero_orders() -> None:
    assert simulate_orders(0, now=NOW) == []


def test_every_event_validates_and_round_trips(events: list[OrderEvent]) -> None:
    codec = EventCodec()
    for event in events:
        validate_event(event, now=NOW)
        assert codec.decode(codec.encode(event)) == event


def test_mix_contains_all_event_types(events: list[OrderEvent]) -> None:
    counts = Counter(event.event_type for event in events)
    assert set(counts) == set(EventType)
    assert counts[EventType.ORDER_PLACED] == 200
    assert 10 <= counts[EventType.ITEM_OUT_OF_STOCK] <= 60
    assert 1 <= counts[EventType.PRICE_ERROR] <= 25
    assert counts[EventType.ORDER_DELIVERED] > 150
    assert 3 <= counts[EventType.ORDER_CANCELLED] <= 40
    assert counts[EventType.OUT_FOR_DELIVERY] > 80


def test_a_cancelled_order_ships_nothing_and_gets_back_what_it_paid(events: list[OrderEvent]) -> None:
    whole = 0
    for order in _by_order(events).values():
        cancelled = [e.payload for e in order if isinstance(e.payload, OrderCancelled) and e.payload.whole_order]
        if not cancelled:
            continue
        whole += 1
        assert not any(isinstance(e.payload, OrderShipped) for e in order)
        placed = order[0].payload
        assert isinstance(placed, OrderPlaced)
        refunds = [e.payload for e in order if isinstance(e.payload, RefundIssued)]
        if cancelled[0].refund is None:
            assert refunds == []
        else:
            assert cancelled[0].refund == placed.total and [r.amount for r in refunds] == [placed.total]
    assert whole >= 3


def test_refunds_match_what_they_refund(events: list[OrderEvent]) -> None:
    for order in _by_order(events).values():
        placed = order[0].payload
        assert isinstance(placed, OrderPlaced)
        prices = {i.sku: i.unit_price.amount_minor for i in placed.items}
        for e in order:
            if isinstance(e.payload, RefundIssued) and e.payload.items and not e.payload.shipping_refunded:
                assert e.payload.amount.amount_minor == sum(prices[i.sku] * i.quantity for i in e.payload.items)


def test_orders_mix_tax_included_tax_added_and_discounts_and_all_add_up(events: list[OrderEvent]) -> None:
    placed = [e.payload for e in events if isinstance(e.payload, OrderPlaced)]
    included = {p.total.currency for p in placed if p.prices_include_tax}
    added = {p.total.currency for p in placed if not p.prices_include_tax}
    assert included == {"EUR", "PLN", "GBP"}
    assert added == {"USD"}
    discounted = [p for p in placed if p.discount is not None]
    assert 20 <= len(discounted) <= 90
    assert any(p.discount.code is None for p in discounted if p.discount)
    for p in placed:
        off = p.discount.amount.amount_minor if p.discount else 0
        added_tax = 0 if p.prices_include_tax else p.tax.amount_minor
        assert p.total.amount_minor == p.subtotal.amount_minor - off + p.shipping_cost.amount_minor + added_tax
        assert p.tax.amount_minor > 0


def test_ids_are_unique(events: list[OrderEvent]) -> None:
    assert len({event.event_id for event in events}) == len(events)


def test_per_order_lifecycle_and_time(events: list[OrderEvent]) -> None:
    for order in _by_order(events).values():
        assert order[0].event_type is EventType.ORDER_PLACED
        times = [event.occurred_at for event in order]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert NOW - timedelta(hours=1) <= times[0] and times[-1] <= NOW
        types = [event.event_type for event in order]
        if EventType.ITEM_OUT_OF_STOCK in types and EventType.ORDER_SHIPPED in types:
            assert types.index(EventType.ITEM_OUT_OF_STOCK) < types.index(EventType.ORDER_SHIPPED)
        assert len({event.customer for event in order}) == 1


def test_orders_are_interleaved(events: list[OrderEvent]) -> None:
    first_ids = [event.order_id for event in events[:20]]
    assert len(set(first_ids)) > 5
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)


def test_split_parcels(events: list[OrderEvent]) -> None:
    split = 0
    for order in _by_order(events).values():
        shipped = [e.payload for e in order if isinstance(e.payload, OrderShipped)]
        if len(shipped) == 2:
            split += 1
            assert shipped[0].shipment_id != shipped[1].shipment_id
            assert shipped[0].remaining_items == shipped[1].items
            assert shipped[1].remaining_items == ()
            delivered = [e for e in order if e.event_type is EventType.ORDER_DELIVERED]
            lost = [e for e in order if isinstance(e.payload, DeliveryProblem)
                    and e.payload.kind is DeliveryProblemKind.LOST]
            assert len(delivered) + len(lost) in (0, 2)
    assert 10 <= split <= 60


def test_cancelled_price_error_item_is_not_shipped(events: list[OrderEvent]) -> None:
    for order in _by_order(events).values():
        for event in order:
            if isinstance(event.payload, PriceError) and event.payload.resolution is PriceResolution.CANCELLED_REFUNDED:
                shipped = {i.sku for e in order if isinstance(e.payload, OrderShipped) for i in e.payload.items}
                assert event.payload.item.sku not in shipped


def test_customers_look_real(events: list[OrderEvent]) -> None:
    customers = {event.customer for event in events}
    currencies = {
        "en-GB": {"GBP"}, "en-US": {"USD"}, "de-DE": {"EUR"}, "pl-PL": {"PLN"}, "fr-FR": {"EUR"},
        "es-ES": {"EUR"}, "it-IT": {"EUR"}, "nl-NL": {"EUR"},
    }
    assert {c.locale for c in customers} == set(currencies)
    assert any(not c.display_name.isascii() for c in customers)
    for customer in customers:
        assert customer.email.split("@")[1].split(".")[-2] == "example"
        assert customer.email.isascii()
        assert "/" in customer.time_zone
    for event in events:
        if event.event_type is EventType.ORDER_PLACED:
            assert isinstance(event.payload, OrderPlaced)
            assert event.payload.total.currency in currencies[event.customer.locale]


def test_every_language_with_a_catalog_has_customers_in_a_realistic_share() -> None:
    customers = {e.customer.customer_id: e.customer.locale for e in simulate_orders(1500, seed=5, now=NOW)}
    share = Counter(locale.split("-")[0] for locale in customers.values())
    total = sum(share.values())
    languages = set(available_languages(TEMPLATE_DIR / "locale"))
    assert languages <= set(share), "a catalog nobody in the simulation reads"
    for language in languages:
        assert 0.04 <= share[language] / total <= 0.45, (language, share[language] / total)
    assert share["de"] > share["nl"] and share["en"] > share["pl"]  # not an even split
