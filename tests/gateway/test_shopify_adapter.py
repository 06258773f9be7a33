from __future__ import annotations

from typing import Any

import pytest

from gateway.adapters.base import PlatformRefused, ShopDefaults
from gateway.adapters.shopify import ShopifyAdapter
from schemas.events import (
    CancelReason,
    DeliveryProblem,
    DeliveryProblemKind,
    EventType,
    OrderCancelled,
    OrderDelivered,
    OrderPlaced,
    OrderShipped,
    OutForDelivery,
)
from tests.gateway.adapters_support import fixture, hmac_base64

SECRET = "shpss_test_client_secret"
DEFAULTS = ShopDefaults(locale="de", time_zone="Europe/Berlin")


def _headers(topic: str, body: bytes, event_id: str = "98880550-7158-44d4-b7cd-2c97c8a091b5") -> dict[str, str]:
    return {"X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": hmac_base64(SECRET, body),
            "X-Shopify-Event-Id": event_id, "Content-Type": "application/json"}


def _events(topic: str, name: str) -> list[Any]:
    body = fixture("shopify", name)
    adapter = ShopifyAdapter(SECRET)
    headers = _headers(topic, body)
    adapter.verify(headers, body)
    return adapter.events(headers, body, DEFAULTS)


@pytest.mark.parametrize(("topic", "name", "expected"), [
    ("orders/create", "orders_create.json", [EventType.ORDER_PLACED]),
    ("orders/cancelled", "orders_cancelled.json", [EventType.ORDER_CANCELLED]),
    ("fulfillments/create", "fulfillments_create.json", [EventType.ORDER_SHIPPED]),
    ("fulfillments/update", "fulfillments_update_out_for_delivery.json", [EventType.OUT_FOR_DELIVERY]),
    ("fulfillments/update", "fulfillments_update_delivered.json", [EventType.ORDER_DELIVERED]),
    ("fulfillments/update", "fulfillments_update_attempted_delivery.json", [EventType.DELIVERY_PROBLEM]),
    ("fulfillment_events/create", "fulfillment_events_create.json", []),
    ("refunds/create", "refunds_create.json", []),
    ("products/update", "orders_create.json", []),
])
def test_each_fixture_is_verified_and_mapped_to_exactly_its_events(topic: str, name: str,
                                                                   expected: list[EventType]) -> None:
    events = _events(topic, name)
    assert [e.event_type for e in events] == expected
    assert all(e.order_id == "820982911946154508" for e in events)


def test_an_order_is_read_to_the_cent_with_discount_shipping_and_tax() -> None:
    (event,) = _events("orders/create", "orders_create.json")
    placed = event.payload
    assert isinstance(placed, OrderPlaced)
    assert [i.unit_price.amount_minor for i in placed.items] == [19900, 19900]
    assert placed.subtotal.amount_minor == 39800 and placed.total.amount_minor == 40300
    assert placed.discount is not None and placed.discount.amount.amount_minor == 500
    assert placed.shipping_cost.amount_minor == 1000 and placed.tax.amount_minor == 0
    assert placed.prices_include_tax is False and placed.total.currency == "USD"
    assert placed.shipping_address.country == "US" and placed.shipping_address.region == "KY"
    assert event.customer.customer_id == "115310627314723954" and event.customer.email == "jon@example.org"
    assert event.customer.display_name == "John Smith"


def test_missing_locale_and_time_zone_come_from_the_shop_defaults() -> None:
    (event,) = _events("orders/create", "orders_create.json")
    assert (event.customer.locale, event.customer.time_zone) == ("en", "Europe/Berlin")  # customer_locale given
    body = fixture("shopify", "orders_create.json").replace(b'"customer_locale": "en"', b'"customer_locale": null')
    (event,) = ShopifyAdapter(SECRET).events(_headers("orders/create", body), body, DEFAULTS)
    assert (event.customer.locale, event.customer.time_zone) == ("de", "Europe/Berlin")


def test_shipping_news_carries_the_parcel_and_tracking_link() -> None:
    (shipped,) = _events("fulfillments/create", "fulfillments_create.json")
    assert isinstance(shipped.payload, OrderShipped)
    assert (shipped.payload.carrier, shipped.payload.tracking_number) == ("UPS", "1Z2345")
    assert shipped.customer.customer_id.startswith("email-sha256:")
    (out,) = _events("fulfillments/update", "fulfillments_update_out_for_delivery.json")
    assert isinstance(out.payload, OutForDelivery) and out.payload.shipment_id == "123456"
    (delivered,) = _events("fulfillments/update", "fulfillments_update_delivered.json")
    assert isinstance(delivered.payload, OrderDelivered) and delivered.payload.delivered_at.hour == 14
    (attempted,) = _events("fulfillments/update", "fulfillments_update_attempted_delivery.json")
    assert isinstance(attempted.payload, DeliveryProblem) and attempted.payload.kind is DeliveryProblemKind.ATTEMPTED
    (cancelled,) = _events("orders/cancelled", "orders_cancelled.json")
    assert isinstance(cancelled.payload, OrderCancelled)
    assert cancelled.payload.reason is CancelReason.CUSTOMER_REQUEST and cancelled.payload.whole_order


def test_a_retried_delivery_gets_the_same_event_id_and_another_delivery_another() -> None:
    body = fixture("shopify", "orders_create.json")
    adapter = ShopifyAdapter(SECRET)
    first = adapter.events(_headers("orders/create", body, "e-1"), body, DEFAULTS)
    again = adapter.events(_headers("orders/create", body, "e-1"), body, DEFAULTS)
    other = adapter.events(_headers("orders/create", body, "e-2"), body, DEFAULTS)
    assert first[0].event_id == again[0].event_id != other[0].event_id


@pytest.mark.parametrize("signature", ["", "AAAA",
                                       hmac_base64("another secret", fixture("shopify", "orders_create.json"))])
def test_a_bad_signature_is_refused_with_401(signature: str) -> None:
    body = fixture("shopify", "orders_create.json")
    with pytest.raises(PlatformRefused) as refused:
        ShopifyAdapter(SECRET).verify({"X-Shopify-Hmac-Sha256": signature}, body)
    assert (refused.value.status, refused.value.reason) == (401, "bad_signature")


def test_a_changed_body_is_refused_with_401() -> None:
    body = fixture("shopify", "orders_create.json")
    headers = _headers("orders/create", body)
    with pytest.raises(PlatformRefused) as refused:
        ShopifyAdapter(SECRET).verify(headers, body.replace(b"403.00", b"4.03"))
    assert refused.value.status == 401


def test_sums_that_do_not_add_up_are_refused_with_400_naming_the_field() -> None:
    body = fixture("shopify", "orders_create_sums_off.json")
    with pytest.raises(PlatformRefused) as refused:
        ShopifyAdapter(SECRET).events(_headers("orders/create", body), body, DEFAULTS)
    assert (refused.value.status, refused.value.reason) == (400, "malformed")
    assert str(refused.value).startswith("total_price (payload.total): total 404.00 \u2260 subtotal 398.00")


@pytest.mark.parametrize(("change", "named"), [
    ((b'"price": "199.00"', b'"price": "199.005"'), "line_items[0].price"),
    ((b'"total_price": "403.00"', b'"total_price": "4O3.00"'), "total_price"),
    ((b'"email": "jon@example.org"', b'"email": null'), "email"),
])
def test_unreadable_fields_are_refused_with_400_naming_them(change: tuple[bytes, bytes], named: str) -> None:
    body = fixture("shopify", "orders_create.json").replace(*change, 1)
    for address in (b'"contact_email": "jon@example.org"', b'"email": "john@example.org"'):
        body = body.replace(address, address.split(b":")[0] + b": null")
    with pytest.raises(PlatformRefused) as refused:
        ShopifyAdapter(SECRET).events(_headers("orders/create", body), body, ShopDefaults("en", "UTC"))
    assert refused.value.status == 400 and str(refused.value).startswith(named)


def test_adapters_from_settings_are_the_platforms_whose_secret_is_set() -> None:
    from gateway.adapters.base import adapters_from_settings
    from ordernotify.config import load_settings

    assert adapters_from_settings(load_settings(None, {})) == {}
    settings = load_settings(None, {"ORDERNOTIFY_SHOPIFY_SECRET": SECRET,
                                    "ORDERNOTIFY_SALEOR_JWKS_URL": "https://shop.example.org/.well-known/jwks.json"})
    assert sorted(adapters_from_settings(settings)) == ["saleor", "shopify"]


@pytest.mark.parametrize(("topic", "name"), [("orders/create", "orders_create.json"),
                                             ("fulfillments/create", "fulfillments_create.json")])
def test_a_quantity_that_is_not_a_whole_number_is_refused_with_400_naming_it(topic: str, name: str) -> None:
    import json

    data = json.loads(fixture("shopify", name))
    data["line_items"][0]["quantity"] = "two"
    body = json.dumps(data).encode()
    with pytest.raises(PlatformRefused) as refused:
        ShopifyAdapter(SECRET).events(_headers(topic, body), body, DEFAULTS)
    assert (refused.value.status, refused.value.reason) == (400, "malformed")
    assert "line_items[0].quantity" in str(refused.value)
