"""Shopify: ``X-Shopify-Hmac-Sha256`` (base64 HMAC-SHA256 of the raw body with the app's client secret) and the
order topics mapped to ordernotify events.

| ``X-Shopify-Topic`` | event |
|---|---|
| ``orders/create`` | ORDER_PLACED |
| ``orders/cancelled`` | ORDER_CANCELLED (the whole order; ``cancel_reason`` mapped) |
| ``fulfillments/create`` | ORDER_SHIPPED |
| ``fulfillments/update`` | by ``shipment_status`` (below) |
| ``fulfillment_events/create`` | by ``status`` (below); the customer, carrier, tracking link and items looked up |
| ``refunds/create`` | REFUND_ISSUED; the customer looked up |
| anything else | none |

The two looked-up topics name no customer: with ``ORDERNOTIFY_SHOPIFY_ADMIN_TOKEN`` the adapter asks the shop's
GraphQL Admin API (:mod:`shopify_admin`) for the order (its e-mail, locale, customer, status page) or the fulfillment
(tracking and items, and its order); without a token they map to none, as does one whose order is gone. While the
Admin API cannot answer (unreachable, 5xx, 429, throttled) the delivery is answered 503 and Shopify sends it again.

Status (``shipment_status`` of a fulfillment, ``status`` of a fulfillment event): out_for_delivery →
OUT_FOR_DELIVERY, delivered → ORDER_DELIVERED, attempted_delivery → DELIVERY_PROBLEM (attempted), delayed and
failure → DELIVERY_PROBLEM (delayed); any other (confirmed, in_transit, label_printed, ready_for_pickup...) → none.

Refunds: the amount is the sum of the refund's successful ``transactions`` of kind ``refund``, the items its
``refund_line_items``, shipping refunded when an ``order_adjustments`` entry is a ``shipping_refund`` or
``refund_shipping_lines`` has one. A refund that returns no money maps to none; one that names neither items nor
shipping (an amount refunded by hand: goodwill, a price corrected after the sale) is told as the amount alone.

Money: Shopify's decimal strings are read exactly into minor units. ``total_line_items_price`` is the subtotal
(Shopify's own ``subtotal_price`` is after discounts), ``total_discounts`` the discount, the shipping lines'
``total_shipping_price_set`` the shipping, ``total_tax`` the tax and ``taxes_included`` says whether the prices
contain it. If these do not add up to ``total_price`` the delivery is refused (400) naming the field.

Event ids: uuid5 over ``X-Shopify-Event-Id`` (the same on every retry of a delivery) and the kind of news; the
parcel's news (by status) over the fulfillment id, the status and its day (UTC) instead, so that
``fulfillments/update`` and ``fulfillment_events/create`` telling the same news give one event id, which the
consumer's dedupe takes once, while the same status on another day (a second attempt) is news again. The day is
the fulfillment's ``updated_at`` for ``fulfillments/update`` and the event's ``happened_at`` for
``fulfillment_events/create``: when the two fall either side of midnight UTC, the news is told twice (rare).
"""

from __future__ import annotations

import hashlib
import logging
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
    whole_number,
)
from gateway.adapters.shopify_admin import (
    FULFILLMENT_QUERY,
    ORDER_QUERY,
    AdminApi,
    fulfillment_gid,
    legacy_id,
    order_gid,
    shop_domain,
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
    RefundIssued,
)

log = logging.getLogger(__name__)

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
PARCEL_FIELDS = {"payload.carrier": "trackingInfo.company", "payload.tracking_url": "trackingInfo.url",
                 "customer.email": "order.email", "customer.locale": "order.customerLocale",
                 "payload.items": "fulfillmentLineItems"}
REFUND_FIELDS = {"payload.amount.amount_minor": "transactions", "payload.amount": "transactions",
                 "payload.items": "refund_line_items", "payload.refund_id": "id", "customer.email": "order.email",
                 "customer.locale": "order.customerLocale"}
PAYLOAD_TOPICS = ("orders/create", "orders/cancelled", "fulfillments/create", "fulfillments/update")
LOOKED_UP_TOPICS = ("refunds/create", "fulfillment_events/create")
PROBLEMS = {"attempted_delivery": DeliveryProblemKind.ATTEMPTED, "delayed": DeliveryProblemKind.DELAYED,
            # a failure without detail: the customer hears that the parcel is late, not that it is lost
            "failure": DeliveryProblemKind.DELAYED}
PARCEL_STATUSES = ("out_for_delivery", "delivered", *PROBLEMS)


class ShopifyAdapter:
    """One Shopify app's webhooks (the secret is the app's client secret); ``admin`` asks the shop's Admin API for
    what ``refunds/create`` and ``fulfillment_events/create`` lack (None: those topics map to none)."""

    name = PLATFORM

    def __init__(self, secret: str, admin: AdminApi | None = None) -> None:
        self._secret = secret
        self._admin = admin

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        given = header(headers, "X-Shopify-Hmac-Sha256")
        if not given or not hmac_sha256_base64_matches(self._secret, body, given):
            raise PlatformRefused(401, "bad_signature",
                                  "X-Shopify-Hmac-Sha256 is missing or not signed with the app's client secret")

    def events(self, headers: Mapping[str, str], body: bytes, defaults: ShopDefaults) -> list[OrderEvent]:
        """The events of the topics whose payload says everything; none for the others (see
        :meth:`events_with_lookups`)."""
        topic = header(headers, "X-Shopify-Topic")
        if topic not in PAYLOAD_TOPICS:
            return []
        identity = _delivery_identity(headers)
        data = json_object(body)
        if topic == "orders/create":
            return [_placed(data, identity, defaults)]
        if topic == "orders/cancelled":
            return [_cancelled(data, identity, defaults)]
        return _fulfillment(topic, data, identity, defaults)

    async def events_with_lookups(self, headers: Mapping[str, str], body: bytes,
                                  defaults: ShopDefaults) -> list[OrderEvent]:
        """Every topic's events, asking the Admin API for what a payload lacks (when there is a token)."""
        topic = header(headers, "X-Shopify-Topic")
        if topic not in LOOKED_UP_TOPICS or self._admin is None:
            return self.events(headers, body, defaults)
        data = json_object(body)
        if topic == "refunds/create":
            return await _refund(self._admin, headers, data, defaults)
        return await _fulfillment_event(self._admin, headers, data, defaults)


def adapter_from_settings(settings: Settings) -> ShopifyAdapter:
    admin = None
    if settings.shopify_admin_token:
        # half the answer time at most, so that the broker's acknowledgement fits in the rest
        admin = AdminApi(settings.shopify_admin_token.reveal(), settings.shopify_admin_api_version,
                         settings.shopify_admin_api_url, settings.gateway_answer_timeout_s / 2)
    return ShopifyAdapter(settings.shopify_secret.reveal(), admin)


def _delivery_identity(headers: Mapping[str, str]) -> str:
    identity = header(headers, "X-Shopify-Event-Id") or header(headers, "X-Shopify-Webhook-Id")
    if not identity:
        raise refused("X-Shopify-Event-Id", "is missing: a retried delivery could not be recognised")
    return identity


def _shop(headers: Mapping[str, str]) -> str:
    shop = shop_domain(header(headers, "X-Shopify-Shop-Domain"))
    if shop is None:
        raise refused("X-Shopify-Shop-Domain", "is not a *.myshopify.com name: the order cannot be looked up")
    return shop


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


def _looked_up_customer(order: Mapping[str, Any], defaults: ShopDefaults) -> Customer:
    """The customer of an order the Admin API gave (GraphQL's names), in the payloads' terms."""
    person = order.get("customer") if isinstance(order.get("customer"), dict) else None
    return _customer({"email": order.get("email"), "customer_locale": order.get("customerLocale")}, defaults,
                     {"id": legacy_id(person["id"]), "first_name": person.get("firstName"),
                      "last_name": person.get("lastName")} if person and person.get("id") else None)


def _envelope(kind: EventType, data: Mapping[str, Any], identity: str, customer: Customer, payload: Payload,
              when: str, order_id: str, order_url: Any = None) -> OrderEvent:
    order_url = order_url or data.get("order_status_url")
    return OrderEvent(
        event_id=event_id(PLATFORM, identity, kind.value), event_type=kind,
        occurred_at=timestamp(field(data, when), when), order_id=order_id, customer=customer, payload=payload,
        order_url=str(order_url) if order_url else None,
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
                 quantity=whole_number(field(item, "quantity", f"line_items[{i}]."), f"line_items[{i}].quantity"),
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
                            quantity=whole_number(item.get("quantity"), f"line_items[{i}].quantity"))
                 for i, item in enumerate(data.get("line_items") or []))


def _parcel_news(status: str, shipment_id: str, carrier: str, tracking_url: str, items: tuple[ParcelItem, ...],
                 data: Mapping[str, Any], when: str) -> tuple[EventType, Payload] | None:
    """The news a parcel's status is, alike for ``fulfillments/update`` and ``fulfillment_events/create``."""
    if status == "out_for_delivery":
        return EventType.OUT_FOR_DELIVERY, OutForDelivery(shipment_id, carrier, tracking_url)
    if status == "delivered":
        return EventType.ORDER_DELIVERED, OrderDelivered(
            shipment_id=shipment_id, delivered_at=timestamp(field(data, when), when), items=items)
    if status in PROBLEMS:
        return EventType.DELIVERY_PROBLEM, DeliveryProblem(shipment_id, PROBLEMS[status], carrier, tracking_url)
    return None


def _parcel_identity(shipment_id: str, status: str, data: Mapping[str, Any], when: str) -> str:
    """One parcel's news on one day, whichever topic (or how many deliveries of it) told it: the same status again
    on another day (a second attempt, out for delivery again) is news again, as the consumer's rules have it."""
    day = timestamp(field(data, when), when).date().isoformat()  # UTC
    return f"fulfillment/{shipment_id}/{status}/{day}"


def _fulfillment(topic: str, data: Mapping[str, Any], identity: str, defaults: ShopDefaults) -> list[OrderEvent]:
    destination = data.get("destination") if isinstance(data.get("destination"), dict) else None
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
        status = str(data.get("shipment_status") or "").lower()
        news = _parcel_news(status, shipment_id, carrier, tracking_url, _parcel_items(data), data, when)
        if news is None:
            return []
        (kind, payload), identity = news, _parcel_identity(shipment_id, status, data, when)
    customer = _customer(data, defaults, destination)
    return [checked(_envelope(kind, data, identity, customer, payload, when, order_id), SHIPPING_FIELDS)]


async def _fulfillment_event(admin: AdminApi, headers: Mapping[str, str], data: Mapping[str, Any],
                             defaults: ShopDefaults) -> list[OrderEvent]:
    status = str(data.get("status") or "").lower()
    if status not in PARCEL_STATUSES:
        return []  # nothing to tell: not worth a lookup
    shipment_id, order_id = str(field(data, "fulfillment_id")), str(field(data, "order_id"))
    fulfillment = await admin.find(_shop(headers), FULFILLMENT_QUERY, "fulfillment", fulfillment_gid(shipment_id))
    order = fulfillment.get("order") if fulfillment else None
    if not fulfillment or not isinstance(order, dict):
        log.info("fulfillment_events/create for a fulfillment the shop no longer has: nothing to tell")
        return []
    tracking = next((t for t in fulfillment.get("trackingInfo") or [] if isinstance(t, dict)), {})
    items = _looked_up_items(fulfillment)
    when = "happened_at" if data.get("happened_at") else "created_at"
    news = _parcel_news(status, shipment_id, str(tracking.get("company") or ""), str(tracking.get("url") or ""),
                        items, data, when)
    if news is None:
        return []
    kind, payload = news
    identity = _parcel_identity(shipment_id, status, data, when)
    return [checked(_envelope(kind, data, identity, _looked_up_customer(order, defaults), payload, when, order_id,
                              order.get("statusPageUrl")), PARCEL_FIELDS)]


def _looked_up_items(fulfillment: Mapping[str, Any]) -> tuple[ParcelItem, ...]:
    items = []
    for i, node in enumerate((fulfillment.get("fulfillmentLineItems") or {}).get("nodes") or []):
        if not isinstance(node, dict):
            continue
        line: Mapping[str, Any] = node["lineItem"] if isinstance(node.get("lineItem"), dict) else {}
        quantity = whole_number(node.get("quantity"), f"fulfillment.fulfillmentLineItems[{i}].quantity")
        if quantity > 0:
            items.append(ParcelItem(sku=str(line.get("sku") or legacy_id(line.get("id") or "")),
                                    name=str(line.get("name") or ""), quantity=quantity))
    return tuple(items)


def _refunded(data: Mapping[str, Any], defaults: ShopDefaults) -> RefundIssued | None:
    """The refund as the customer sees it; None when it returns no money. One that names neither items nor
    shipping (an amount refunded by hand: goodwill, a price corrected) is the amount alone."""
    transactions = [t for t in data.get("transactions") or [] if isinstance(t, dict)]
    refunds = [(i, t) for i, t in enumerate(transactions)
               if t.get("kind") == "refund" and str(t.get("status") or "success") == "success"]
    currency = str(next((t.get("currency") for _, t in refunds if t.get("currency")), None)
                   or defaults.currency or "")
    if not refunds:
        return None
    if not currency:
        raise refused("transactions[].currency", "is missing, and --shop-default-currency is not set")
    amount = sum(minor_units(field(t, "amount", f"transactions[{i}]."), currency, f"transactions[{i}].amount")
                 for i, t in refunds)
    items = []
    for i, refunded in enumerate(data.get("refund_line_items") or []):
        if not isinstance(refunded, dict):
            raise refused(f"refund_line_items[{i}]", "is not an object")
        line: Mapping[str, Any] = refunded["line_item"] if isinstance(refunded.get("line_item"), dict) else {}
        quantity = whole_number(refunded.get("quantity"), f"refund_line_items[{i}].quantity")
        if quantity > 0:
            items.append(ParcelItem(
                sku=str(line.get("sku") or line.get("variant_id") or refunded.get("line_item_id")
                        or field(refunded, "id", f"refund_line_items[{i}].")),
                name=str(line.get("name") or line.get("title") or ""), quantity=quantity))
    adjustments = data.get("order_adjustments") or []
    shipping = any(isinstance(a, dict) and a.get("kind") == "shipping_refund" for a in adjustments) or bool(
        data.get("refund_shipping_lines"))
    if amount <= 0:
        return None
    return RefundIssued(refund_id=str(field(data, "id")), amount=Money(amount, currency), items=tuple(items),
                        shipping_refunded=shipping)


async def _refund(admin: AdminApi, headers: Mapping[str, str], data: Mapping[str, Any],
                  defaults: ShopDefaults) -> list[OrderEvent]:
    identity = _delivery_identity(headers)
    refund = _refunded(data, defaults)
    if refund is None:
        log.info("refunds/create that returns no money: nothing to tell")
        return []
    order_id = str(field(data, "order_id"))
    order = await admin.find(_shop(headers), ORDER_QUERY, "order", order_gid(order_id))
    if order is None:
        log.info("refunds/create for an order the shop no longer has: nothing to tell")
        return []
    when = "processed_at" if data.get("processed_at") else "created_at"
    return [checked(_envelope(EventType.REFUND_ISSUED, data, identity, _looked_up_customer(order, defaults), refund,
                              when, order_id, order.get("statusPageUrl")), REFUND_FIELDS)]
