"""Shopify: ``X-Shopify-Hmac-Sha256`` (base64 HMAC-SHA256 of the raw body with the app's client secret) and the
order topics mapped to ordernotify events.

| ``X-Shopify-Topic`` | event |
|---|---|
| ``orders/create`` | ORDER_PLACED |
| ``orders/cancelled`` | ORDER_CANCELLED (the whole order; ``cancel_reason`` mapped) |
| ``fulfillments/create`` | ORDER_SHIPPED |
| ``fulfillments/update`` | by ``shipment_status`` (below) |
| ``fulfillment_events/create``, ``refunds/create`` | none: their payloads name no customer address |
| anything else | none |

``shipment_status``: out_for_delivery → OUT_FOR_DELIVERY, delivered → ORDER_DELIVERED, attempted_delivery →
DELIVERY_PROBLEM (attempted), delayed and failure → DELIVERY_PROBLEM (delayed); any other → none.

Money: Shopify's decimal strings are read exactly into minor units. ``total_line_items_price`` is the subtotal
(Shopify's own ``subtotal_price`` is after discounts), ``total_discounts`` the discount, the shipping lines'
``total_shipping_price_set`` the shipping, ``total_tax`` the tax and ``taxes_included`` says whether the prices
contain it. If these do not add up to ``total_price`` the delivery is refused (400) naming the field.

Event ids: uuid5 over ``X-Shopify-Event-Id`` (the same on every retry of a delivery) and the kind of news.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from gateway.adapters.base import PlatformRefused, ShopDefaults
from gateway.adapters.reading import (
    checked,
    event_id,
    field,
    header,
    hmac_sha256_base64_matches,
    json_object,
    minor_units,
    refused,
    text,
    timestamp,
)
from ordernotify.config import Settings
from schemas.events import (
    Address,
    CancelReason,
    Customer,
    DeliveryProblem,
    DeliveryProblemKind,
    Discount,
    EventType,
    LineItem,
    Money,
    OrderCancelled,
    OrderDelivered,
    OrderEvent,
    OrderPlaced,
    OrderShipped,
    OutForDelivery,
    ParcelItem,
    Payload,
)

PLATFORM = "shopify"
CANCEL_REASONS = {"customer": CancelReason.CUSTOMER_REQUEST, "inventory": CancelReason.OUT_OF_STOCK,
                  "declined": CancelReason.PAYMENT_FAILED}  # fraud, staff, other: the shop's decision
# ordernotify's field -> Shopify's, for the 400 answer
PLACED_FIELDS = {
    "payload.total": "total_price", "payload.subtotal": "total_line_items_price",
    "payload.discount.amount": "total_discounts", "payload.shipping_cost": "total_shipping_price_set",
    "payload.tax": "total_tax", "payload.prices_include_tax": "taxes_included", "customer.email": "email",
    "customer.locale": "customer_locale", "payload.items": "line_items",
}
SHIPPING_FIELDS = {"payload.carrier": "tracking_company", "payload.tracking_url": "tracking_url",
                   "payload.tracking_number": "tracking_number", "customer.email": "email",
                   "payload.items": "line_items"}


class ShopifyAdapter:
    """One Shopify app's webhooks (the secret is the app's client secret)."""

    name = PLATFORM

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        given = header(headers, "X-Shopify-Hmac-Sha256")
        if not given or not hmac_sha256_base64_matches(self._secret, body, given):
            raise PlatformRefused(401, "bad_signature",
                                  "X-Shopify-Hmac-Sha256 is missing or not signed with the app's client secret")

    def events(self, headers: Mapping[str, str], body: bytes, defaults: ShopDefaults) -> list[OrderEvent]:
        topic = header(headers, "X-Shopify-Topic")
        if topic not in ("orders/create", "orders/cancelled", "fulfillments/create", "fulfillments/update"):
            return []
        identity = header(headers, "X-Shopify-Event-Id") or header(headers, "X-Shopify-Webhook-Id")
        if not identity:
            raise refused("X-Shopify-Event-Id", "is missing: a retried delivery could not be recognised")
        data = json_object(body)
        if topic == "orders/create":
            return [_placed(data, identity, defaults)]
        if topic == "orders/cancelled":
            return [_cancelled(data, identity, defaults)]
        return _fulfillment(topic, data, identity, defaults)


def adapter_from_settings(settings: Settings) -> ShopifyAdapter:
    return ShopifyAdapter(settings.shopify_secret.reveal())


def _customer(data: Mapping[str, Any], defaults: ShopDefaults, person: Mapping[str, Any] | None) -> Customer:
    """The customer: Shopify's customer id when the payload has one, else a digest of the address (fulfillment
    payloads carry only the address); locale from ``customer_locale``; time zone always the shop's default."""
    email = str(data.get("email") or data.get("contact_email") or (person or {}).get("email") or "")
    if not email:
        raise refused("email", "is missing: the customer cannot be e-mailed")
    person = person or {}
    if person.get("id") is not None:
        customer_id = str(person["id"])
    else:
        customer_id = "email-sha256:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    name = " ".join(str(person.get(k) or "") for k in ("first_name", "last_name")).strip()
    locale = str(data.get("customer_locale") or defaults.locale)
    return Customer(customer_id=customer_id, email=email, display_name=name, locale=locale,
                    time_zone=defaults.time_zone)


def _envelope(kind: EventType, data: Mapping[str, Any], identity: str, customer: Customer, payload: Payload,
              when: str, order_id: str) -> OrderEvent:
    return OrderEvent(
        event_id=event_id(PLATFORM, identity, kind.value), event_type=kind,
        occurred_at=timestamp(field(data, when), when), order_id=order_id, customer=customer, payload=payload,
        order_url=str(data["order_status_url"]) if data.get("order_status_url") else None,
    )


def _money(data: Mapping[str, Any], name: str, currency: str) -> Money:
    return Money(minor_units(field(data, name), currency, name), currency)


def _shipping_cost(data: Mapping[str, Any], currency: str) -> Money:
    shop_money = (data.get("total_shipping_price_set") or {}).get("shop_money") or {}
    if shop_money.get("amount") is not None:
        return Money(minor_units(shop_money["amount"], currency, "total_shipping_price_set.shop_money.amount"),
                     currency)
    lines = data.get("shipping_lines") or []
    return Money(sum(minor_units(line.get("discounted_price", line.get("price", "0")), currency,
                                 f"shipping_lines[{i}].price") for i, line in enumerate(lines)), currency)


def _address(raw: Any) -> Address:
    if not isinstance(raw, dict):
        raise refused("shipping_address", "is missing: the order confirmation shows where it goes")
    recipient = str(raw.get("name") or " ".join(str(raw.get(k) or "") for k in ("first_name", "last_name")).strip())
    return Address(recipient=recipient or text(raw, "name", "shipping_address."),
                   line1=text(raw, "address1", "shipping_address."), city=text(raw, "city", "shipping_address."),
                   postal_code=str(raw.get("zip") or ""),
                   country=text(raw, "country_code", "shipping_address."),
                   line2=str(raw["address2"]) if raw.get("address2") else None,
                   region=str(raw["province_code"]) if raw.get("province_code") else None)


def _placed(data: Mapping[str, Any], identity: str, defaults: ShopDefaults) -> OrderEvent:
    currency = str(data.get("currency") or defaults.currency or text(data, "currency"))
    items = tuple(
        LineItem(sku=str(item.get("sku") or item.get("variant_id") or field(item, "id", f"line_items[{i}].")),
                 name=str(item.get("name") or item.get("title") or ""),
                 quantity=int(field(item, "quantity", f"line_items[{i}].")),
                 unit_price=Money(minor_units(field(item, "price", f"line_items[{i}]."), currency,
                                              f"line_items[{i}].price"), currency))
        for i, item in enumerate(data.get("line_items") or [])
    )
    discount_minor = minor_units(data.get("total_discounts") or "0", currency, "total_discounts")
    codes = [str(c.get("code")) for c in data.get("discount_codes") or [] if c.get("code")]
    placed = OrderPlaced(
        items=items, subtotal=_money(data, "total_line_items_price", currency),
        shipping_cost=_shipping_cost(data, currency), tax=Money(minor_units(data.get("total_tax") or "0", currency,
                                                                            "total_tax"), currency),
        total=_money(data, "total_price", currency), shipping_address=_address(data.get("shipping_address")),
        prices_include_tax=bool(data.get("taxes_included")),
        discount=Discount(Money(discount_minor, currency), code=", ".join(codes) or None) if discount_minor else None,
    )
    customer = _customer(data, defaults, data.get("customer"))
    return checked(_envelope(EventType.ORDER_PLACED, data, identity, customer, placed, "created_at",
                             str(field(data, "id"))), PLACED_FIELDS)


def _cancelled(data: Mapping[str, Any], identity: str, defaults: ShopDefaults) -> OrderEvent:
    reason = CANCEL_REASONS.get(str(data.get("cancel_reason")), CancelReason.SHOP_DECISION)
    customer = _customer(data, defaults, data.get("customer"))
    when = "cancelled_at" if data.get("cancelled_at") else "updated_at"
    return checked(_envelope(EventType.ORDER_CANCELLED, data, identity, customer, OrderCancelled(reason=reason),
                             when, str(field(data, "id"))), PLACED_FIELDS)


def _parcel_items(data: Mapping[str, Any]) -> tuple[ParcelItem, ...]:
    return tuple(ParcelItem(sku=str(item.get("sku") or item.get("variant_id") or item.get("id") or ""),
                            name=str(item.get("name") or item.get("title") or ""),
                            quantity=int(item.get("quantity") or 0))
                 for item in data.get("line_items") or [])


def _fulfillment(topic: str, data: Mapping[str, Any], identity: str, defaults: ShopDefaults) -> list[OrderEvent]:
    destination = data.get("destination") if isinstance(data.get("destination"), dict) else None
    customer = _customer(data, defaults, destination)
    order_id, shipment_id = str(field(data, "order_id")), str(field(data, "id"))
    carrier = str(data.get("tracking_company") or "")
    tracking_url = str(data.get("tracking_url") or next(iter(data.get("tracking_urls") or []), "") or "")
    when = "updated_at" if data.get("updated_at") else "created_at"
    payload: Payload
    if topic == "fulfillments/create":
        kind = EventType.ORDER_SHIPPED
        payload = OrderShipped(shipment_id=shipment_id, carrier=carrier,
                               tracking_number=str(data.get("tracking_number") or ""), tracking_url=tracking_url,
                               items=_parcel_items(data))
    else:
        status = str(data.get("shipment_status") or "")
        if status == "out_for_delivery":
            kind, payload = EventType.OUT_FOR_DELIVERY, OutForDelivery(shipment_id, carrier, tracking_url)
        elif status == "delivered":
            kind = EventType.ORDER_DELIVERED
            payload = OrderDelivered(shipment_id=shipment_id, delivered_at=timestamp(field(data, when), when),
                                     items=_parcel_items(data))
        elif status in ("attempted_delivery", "delayed", "failure"):
            # a failure without detail: the customer hears that the parcel is late, not that it is lost
            problem = DeliveryProblemKind.ATTEMPTED if status == "attempted_delivery" else DeliveryProblemKind.DELAYED
            kind, payload = EventType.DELIVERY_PROBLEM, DeliveryProblem(shipment_id, problem, carrier, tracking_url)
        else:
            return []
    return [checked(_envelope(kind, data, identity, customer, payload, when, order_id), SHIPPING_FIELDS)]
