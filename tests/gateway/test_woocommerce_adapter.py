from __future__ import annotations

from typing import Any

import pytest

from gateway.adapters.base import PlatformRefused, ShopDefaults
from gateway.adapters.woocommerce import WooCommerceAdapter
from schemas.events import EventType, OrderPlaced, OrderShipped, RefundIssued
from tests.gateway.adapters_support import fixture, hmac_base64

SECRET = "woo webhook secret"
DEFAULTS = ShopDefaults(locale="en-US", time_zone="America/Los_Angeles")


def _headers(topic: str, body: bytes, delivery: str = "36e520ebabc2fa725092ff4a47acedf2") -> dict[str, str]:
    return {"X-WC-Webhook-Topic": topic, "X-WC-Webhook-Signature": hmac_base64(SECRET, body),
            "X-WC-Webhook-Delivery-ID": delivery, "X-WC-Webhook-Resource": "order"}


def _events(topic: str, name: str, delivery: str = "d-1") -> list[Any]:
    body = fixture("woocommerce", name)
    headers = _headers(topic, body, delivery)
    adapter = WooCommerceAdapter(SECRET)
    adapter.verify(headers, body)
    return adapter.events(headers, body, DEFAULTS)


@pytest.mark.parametrize(("topic", "name", "expected"), [
    ("order.created", "order_created.json", [EventType.ORDER_PLACED]),
    ("order.created", "order_created_pending.json", []),
    ("order.updated", "order_created.json", [EventType.ORDER_PLACED]),
    ("order.updated", "order_updated_cancelled.json", [EventType.ORDER_CANCELLED]),
    ("order.updated", "order_updated_refunded.json", [EventType.REFUND_ISSUED]),
    ("order.updated", "order_updated_completed.json", [EventType.ORDER_SHIPPED]),
    ("order.updated", "order_updated_completed_untracked.json", []),
    ("order.deleted", "order_created.json", []),
    ("product.updated", "order_created.json", []),
])
def test_each_fixture_is_verified_and_mapped_to_exactly_its_events(topic: str, name: str,
                                                                   expected: list[EventType]) -> None:
    events = _events(topic, name)
    assert [e.event_type for e in events] == expected
    assert all(e.order_id == "727" for e in events)


def test_an_order_is_read_to_the_cent_and_the_shop_defaults_fill_the_gaps() -> None:
    (event,) = _events("order.created", "order_created.json")
    placed = event.payload
    assert isinstance(placed, OrderPlaced)
    assert [(i.sku, i.quantity, i.unit_price.amount_minor) for i in placed.items] == [("93", 2, 300),
                                                                                       ("Bar3", 1, 1200)]
    assert (placed.subtotal.amount_minor, placed.shipping_cost.amount_minor, placed.tax.amount_minor,
            placed.total.amount_minor) == (1800, 1000, 135, 2935)
    assert placed.prices_include_tax is False and placed.discount is None
    assert (event.customer.locale, event.customer.time_zone) == ("en-US", "America/Los_Angeles")
    assert event.customer.customer_id == "guest:727" and event.occurred_at.isoformat() == "2017-03-22T19:28:02+00:00"


def test_the_same_news_gets_one_event_id_whatever_the_delivery_and_the_edits() -> None:
    created = _events("order.created", "order_created.json", "d-1")
    retried = _events("order.created", "order_created.json", "d-2")  # Woo's delivery id changes on a retry
    paid_again = _events("order.updated", "order_created.json", "d-3")
    assert created[0].event_id == retried[0].event_id == paid_again[0].event_id
    assert created[0].event_id != _events("order.updated", "order_updated_cancelled.json")[0].event_id


def test_an_edit_weeks_later_does_not_make_the_order_news_again() -> None:
    """The consumer remembers event ids for days, not for ever: an order edited weeks later (a note, an address)
    comes again with a new date_modified, and must come as the old news it is, too old to be e-mailed again."""
    import json

    order = json.loads(fixture("woocommerce", "order_created.json"))
    body = json.dumps({**order, "date_modified_gmt": "2017-05-02T09:00:00"}).encode()
    headers = _headers("order.updated", body)
    (edited,) = WooCommerceAdapter(SECRET).events(headers, body, DEFAULTS)
    (placed,) = _events("order.created", "order_created.json")
    assert (edited.event_id, edited.occurred_at) == (placed.event_id, placed.occurred_at)
    assert edited.occurred_at.isoformat() == "2017-03-22T19:28:02+00:00"  # date_created_gmt


def test_refund_and_shipping_carry_what_the_customer_needs() -> None:
    (refund,) = _events("order.updated", "order_updated_refunded.json")
    assert isinstance(refund.payload, RefundIssued)
    assert (refund.payload.refund_id, refund.payload.amount.amount_minor) == ("726", 2935)
    (shipped,) = _events("order.updated", "order_updated_completed.json")
    assert isinstance(shipped.payload, OrderShipped)
    assert (shipped.payload.carrier, shipped.payload.tracking_number) == ("USPS", "9400111899223197428490")


def test_a_bad_signature_is_refused_with_401() -> None:
    body = fixture("woocommerce", "order_created.json")
    headers = _headers("order.created", body) | {"X-WC-Webhook-Signature": hmac_base64("other", body)}
    with pytest.raises(PlatformRefused) as refused:
        WooCommerceAdapter(SECRET).verify(headers, body)
    assert (refused.value.status, refused.value.reason) == (401, "bad_signature")


def test_sums_that_do_not_add_up_are_refused_with_400_naming_the_field() -> None:
    body = fixture("woocommerce", "order_created_sums_off.json")
    with pytest.raises(PlatformRefused) as refused:
        WooCommerceAdapter(SECRET).events(_headers("order.created", body), body, DEFAULTS)
    assert refused.value.status == 400 and str(refused.value).startswith("total (payload.total): total 30.35")


def test_a_refund_id_that_is_not_a_number_is_refused_naming_it() -> None:
    import json

    order = json.loads(fixture("woocommerce", "order_updated_refunded.json"))
    order["refunds"][0]["id"] = "seven"
    body = json.dumps(order).encode()
    with pytest.raises(PlatformRefused) as refused:
        WooCommerceAdapter(SECRET).events(_headers("order.updated", body), body, DEFAULTS)
    assert refused.value.status == 400 and "refunds[].id" in str(refused.value)
