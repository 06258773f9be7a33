"""WooCommerce: ``X-WC-Webhook-Signature`` (base64 HMAC-SHA256 of the raw body with the webhook's secret) and the
``order.created`` / ``order.updated`` topics mapped to ordernotify events.

WooCommerce sends the whole order but no transition, so the news is worked out from the order's ``status``:

| status | event | its identity (uuid5 with the order id) |
|---|---|---|
| processing, on-hold (paid, or awaiting a bank transfer) | ORDER_PLACED | the order |
| completed, with tracking from the Shipment Tracking extension | ORDER_SHIPPED | the tracking number |
| cancelled | ORDER_CANCELLED (whole order, the shop's decision) | the order |
| refunded, without a REST API key | REFUND_ISSUED (every item; the sum of the refunds) | the newest refund id |
| pending, failed, draft, completed without tracking, anything else | none | |

With a REST API key (``ORDERNOTIFY_WOOCOMMERCE_API_CONSUMER_KEY`` and ``_SECRET``, ``--woocommerce-shop-url``), an
order that lists refunds also tells its newest one (the highest id: every refund fires an ``order.updated`` of its
own, in which it is the newest), looked up at the shop's REST API (:mod:`woocommerce_api`):

| the newest refund | event (identity: the refund id) |
|---|---|
| names items (negative quantities) or refunds shipping | REFUND_ISSUED: its amount, items, shipping |
| names neither; status refunded (set by hand: Woo adds a refund of the rest) | REFUND_ISSUED: every item, shipping |
| names neither; any other status (goodwill, a price corrected) | REFUND_ISSUED: the amount alone |
| gives no money back | none |
| gone (404) | none |

besides the status's own news (above), which a refunded status replaces. The identity is the one of the status
mapping, so a refunded order gets the same event id with or without a key. The event occurred at the refund's own
``date_created_gmt``, not at the order's ``date_modified``: a later edit of the order sends the newest refund
again, and an old refund must not look new to the consumer's ``--max-event-age-h``.

Limits: the identity is the news, not the delivery (WooCommerce's delivery id is new on every delivery, and its
``date_modified`` changes with every edit of the order: a note added to a paid order would otherwise confirm it
again). So an order set to processing twice is confirmed once. The news occurred when the order was created
(placed), completed (shipped) or refunded (a looked-up refund), so that an edit of the order after the consumer
forgot the event id is too old to be news again; a cancellation has no date of its own in WooCommerce and takes the
order's last change; without a REST API key a partial refund (status stays processing) names no items in the
payload and is not mapped; with one, a refund of an amount without items or shipping (goodwill, an item's amount
without its quantity) is told as the amount alone; WooCommerce core knows no carrier, so "completed" is only
shipping news with the Shipment Tracking extension's ``_wc_shipment_tracking_items``. WooCommerce has no customer
time zone: the shop's default is used; the locale likewise unless a ``locale`` or ``wpml_language`` meta entry
names it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
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
from gateway.adapters.woocommerce_api import RestApi
from ordernotify.config import Settings
from schemas.events import (
    Address,
    CancelReason,
    Customer,
    Discount,
    EventType,
    LineItem,
    Money,
    OrderCancelled,
    OrderEvent,
    OrderPlaced,
    OrderShipped,
    ParcelItem,
    Payload,
    RefundIssued,
)

log = logging.getLogger(__name__)

PLATFORM = "woocommerce"
FIELDS = {"payload.total": "total", "payload.subtotal": "line_items[].subtotal", "payload.discount.amount":
          "discount_total", "payload.shipping_cost": "shipping_total", "payload.tax": "total_tax",
          "payload.prices_include_tax": "prices_include_tax", "customer.email": "billing.email",
          "payload.items": "line_items", "payload.tracking_url": "meta_data._wc_shipment_tracking_items"}
# a looked-up refund's fields, for the 400 answer (the refund's own names, as the REST API gives them)
REFUND_FIELDS = {**FIELDS, "payload.amount": "refund.amount", "payload.amount.amount_minor": "refund.amount",
                 "payload.items": "refund.line_items", "payload.refund_id": "refunds[].id"}


class WooCommerceAdapter:
    """One WooCommerce shop's order webhooks (the secret is the one set on the webhooks); ``api`` reads the newest
    refund of an order that lists refunds (None: only the status is mapped)."""

    name = PLATFORM

    def __init__(self, secret: str, api: RestApi | None = None) -> None:
        self._secret = secret
        self._api = api

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        given = header(headers, "X-WC-Webhook-Signature")
        if not given or not hmac_sha256_base64_matches(self._secret, body, given):
            raise PlatformRefused(401, "bad_signature",
                                  "X-WC-Webhook-Signature is missing or not signed with the webhook's secret")

    def events(self, headers: Mapping[str, str], body: bytes, defaults: ShopDefaults) -> list[OrderEvent]:
        topic = header(headers, "X-WC-Webhook-Topic")
        if topic not in ("order.created", "order.updated"):
            return []
        order = json_object(body)
        status = str(order.get("status") or "")
        order_id = str(field(order, "id"))
        if status in ("processing", "on-hold"):
            # occurred when the order was placed: an edit of it weeks later must not make it news again
            return [_event(EventType.ORDER_PLACED, order, order_id, _placed(order, defaults), defaults,
                           occurred_at=_when(order, "date_created_gmt"))]
        if status == "cancelled":
            return [_event(EventType.ORDER_CANCELLED, order, order_id,
                           OrderCancelled(reason=CancelReason.SHOP_DECISION), defaults)]
        if status == "refunded":
            refund = _refund(order, defaults)
            return [_event(EventType.REFUND_ISSUED, order, f"{order_id}/{refund.refund_id}", refund, defaults)]
        if status == "completed":
            shipped = _shipped(order)
            if shipped is None:
                return []
            return [_event(EventType.ORDER_SHIPPED, order, f"{order_id}/{shipped.tracking_number}", shipped,
                           defaults, occurred_at=_when(order, "date_completed_gmt"))]
        return []

    async def events_with_lookups(self, headers: Mapping[str, str], body: bytes,
                                  defaults: ShopDefaults) -> list[OrderEvent]:
        """The status's events and, with a REST API key, the newest refund's, looked up at the shop."""
        topic = header(headers, "X-WC-Webhook-Topic")
        if self._api is None or topic not in ("order.created", "order.updated"):
            return self.events(headers, body, defaults)
        order = json_object(body)
        refunds = [r for r in order.get("refunds") or [] if isinstance(r, dict)]
        if not refunds:
            return self.events(headers, body, defaults)
        order_id = _id(field(order, "id"), "id")
        refund_id = max(_id(field(r, "id", f"refunds[{i}]."), f"refunds[{i}].id") for i, r in enumerate(refunds))
        whole = str(order.get("status") or "") == "refunded"
        told = [] if whole else self.events(headers, body, defaults)  # a refunded status is told by the refund
        source = header(headers, "X-WC-Webhook-Source")
        if not self._api.is_this_shop(source):
            raise refused("X-WC-Webhook-Source", f"{source[:200]!r} is not the shop of --woocommerce-shop-url "
                                                 f"({self._api.shop}): its refund is not looked up")
        found = await self._api.refund(order_id, refund_id)
        if found is None:
            log.info("order.updated whose newest refund the shop no longer has: nothing to tell of it")
            return told
        refund = _looked_up_refund(found, order, defaults, whole)
        if refund is None:
            log.info("order.updated whose newest refund gives no money back: nothing to tell of it")
            return told
        when = timestamp(field(found, "date_created_gmt", "refund."), "refund.date_created_gmt", assume_utc=True)
        return [*told, _event(EventType.REFUND_ISSUED, order, f"{order_id}/{refund_id}", refund, defaults,
                              occurred_at=when, names=REFUND_FIELDS)]


def adapter_from_settings(settings: Settings) -> WooCommerceAdapter:
    api = None
    if settings.woocommerce_api_consumer_key:
        # half the answer time, so that the broker's acknowledgement fits in the rest (WooCommerce waits 60 s)
        api = RestApi(settings.woocommerce_shop_url, settings.woocommerce_api_consumer_key.reveal(),
                      settings.woocommerce_api_consumer_secret.reveal(), settings.gateway_answer_timeout_s / 2)
    return WooCommerceAdapter(settings.woocommerce_secret.reveal(), api)


def _id(value: Any, name: str) -> int:
    """A WooCommerce id (a positive integer): it becomes part of the REST API's path."""
    if isinstance(value, bool) or not str(value).isdigit() or int(str(value)) <= 0:
        raise refused(name, f"{str(value)[:40]!r} is not a WooCommerce id")
    return int(str(value))


def _event(kind: EventType, order: Mapping[str, Any], identity: str, payload: Payload, defaults: ShopDefaults,
           occurred_at: datetime | None = None, names: Mapping[str, str] = FIELDS) -> OrderEvent:
    """The event of ``order``; it occurred at the order's last change unless ``occurred_at`` says otherwise."""
    billing = _obj(order, "billing")
    meta = {str(m.get("key")): m.get("value") for m in order.get("meta_data") or [] if isinstance(m, dict)}
    locale = str(meta.get("locale") or meta.get("wpml_language") or defaults.locale)
    email = text(billing, "email", "billing.")
    customer_id = str(order.get("customer_id") or 0)
    customer = Customer(
        customer_id=customer_id if customer_id != "0" else f"guest:{order.get('id')}",  # 0: a guest checkout
        email=email, display_name=" ".join(str(billing.get(k) or "") for k in ("first_name", "last_name")).strip(),
        locale=locale, time_zone=defaults.time_zone)
    if occurred_at is None:
        occurred_at = _when(order)
    return checked(OrderEvent(
        event_id=event_id(PLATFORM, identity, kind.value), event_type=kind, occurred_at=occurred_at,
        order_id=str(order["id"]), customer=customer, payload=payload), names)


def _when(order: Mapping[str, Any], *names: str) -> datetime:
    """The first of the order's ``names`` dates it has, else its last change (``date_modified_gmt``), else when
    it was created."""
    name = next((n for n in (*names, "date_modified_gmt") if order.get(n)), "date_created_gmt")
    return timestamp(field(order, name), name, assume_utc=True)


def _obj(order: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = order.get(name)
    return value if isinstance(value, dict) else {}


def _placed(order: Mapping[str, Any], defaults: ShopDefaults) -> OrderPlaced:
    currency = str(order.get("currency") or defaults.currency or text(order, "currency"))
    included = bool(order.get("prices_include_tax"))

    def money(*names: str) -> Money:  # the sum of several amount fields, e.g. shipping_total + shipping_tax
        return Money(sum(minor_units(order.get(n) or "0", currency, n) for n in names), currency)

    items = []
    for i, item in enumerate(order.get("line_items") or []):
        quantity = whole_number(field(item, "quantity", f"line_items[{i}]."), f"line_items[{i}].quantity")
        line = Decimal(str(field(item, "subtotal", f"line_items[{i}]."))) + (
            Decimal(str(item.get("subtotal_tax") or "0")) if included else 0)
        unit = minor_units(line / quantity if quantity else line, currency, f"line_items[{i}].subtotal")
        items.append(LineItem(sku=str(item.get("sku") or item.get("product_id") or item.get("id")),
                              name=str(item.get("name") or ""), quantity=quantity, unit_price=Money(unit, currency)))
    shipping = _obj(order, "shipping") if _obj(order, "shipping").get("address_1") else _obj(order, "billing")
    discount = money("discount_total", "discount_tax") if included else money("discount_total")
    codes = [str(c.get("code")) for c in order.get("coupon_lines") or [] if c.get("code")]
    return OrderPlaced(
        items=tuple(items), subtotal=Money(sum(i.unit_price.amount_minor * i.quantity for i in items), currency),
        shipping_cost=money("shipping_total", "shipping_tax") if included else money("shipping_total"),
        tax=money("total_tax"), total=money("total"), prices_include_tax=included,
        discount=Discount(discount, code=", ".join(codes) or None) if discount.amount_minor else None,
        shipping_address=Address(
            recipient=" ".join(str(shipping.get(k) or "") for k in ("first_name", "last_name")).strip()
            or text(shipping, "company", "shipping."),
            line1=text(shipping, "address_1", "shipping."), city=text(shipping, "city", "shipping."),
            postal_code=str(shipping.get("postcode") or ""), country=text(shipping, "country", "shipping."),
            line2=str(shipping["address_2"]) if shipping.get("address_2") else None,
            region=str(shipping["state"]) if shipping.get("state") else None),
    )


def _parcel_items(order: Mapping[str, Any]) -> tuple[ParcelItem, ...]:
    return tuple(ParcelItem(sku=str(item.get("sku") or item.get("product_id") or item.get("id")),
                            name=str(item.get("name") or ""),
                            quantity=whole_number(item.get("quantity"), f"line_items[{i}].quantity"))
                 for i, item in enumerate(order.get("line_items") or []))


def _refund(order: Mapping[str, Any], defaults: ShopDefaults) -> RefundIssued:
    currency = str(order.get("currency") or defaults.currency or text(order, "currency"))
    refunds = [r for r in order.get("refunds") or [] if isinstance(r, dict)]
    if not refunds:
        raise refused("refunds", "is empty although the status is refunded")
    amount = sum(abs(minor_units(field(r, "total", f"refunds[{i}]."), currency, f"refunds[{i}].total"))
                 for i, r in enumerate(refunds))
    newest = max(refunds, key=lambda r: _id(field(r, "id", "refunds[]."), "refunds[].id"))
    return RefundIssued(refund_id=str(field(newest, "id", "refunds[].")), amount=Money(amount, currency),
                        items=_parcel_items(order), shipping_refunded=True,
                        payment_method=str(order["payment_method_title"]) if order.get("payment_method_title")
                        else None)


def _looked_up_refund(refund: Mapping[str, Any], order: Mapping[str, Any], defaults: ShopDefaults,
                      whole: bool) -> RefundIssued | None:
    """A refund as the REST API gives it (``amount``; ``line_items`` and ``shipping_lines`` with negative
    quantities and totals) as the customer sees it; None when it gives no money back. One that names nothing
    refunded is the order's items and shipping when the order is refunded whole (``whole``: its status is
    refunded, as without a key), else the amount alone (goodwill, a price corrected)."""
    currency = str(order.get("currency") or defaults.currency or text(order, "currency"))
    amount = abs(minor_units(field(refund, "amount", "refund."), currency, "refund.amount"))
    items = []
    for i, line in enumerate(refund.get("line_items") or []):
        if not isinstance(line, dict):
            raise refused(f"refund.line_items[{i}]", "is not an object")
        quantity = abs(whole_number(line.get("quantity"), f"refund.line_items[{i}].quantity"))
        if quantity:  # 0: an amount given back on the line, no item
            items.append(ParcelItem(sku=str(line.get("sku") or line.get("product_id") or line.get("id")),
                                    name=str(line.get("name") or ""), quantity=quantity))
    shipping = any(_nonzero(s.get("total")) or _nonzero(s.get("total_tax"))
                   for s in refund.get("shipping_lines") or [] if isinstance(s, dict))
    if not items and not shipping and whole:
        items, shipping = list(_parcel_items(order)), True
    if amount == 0:
        return None
    return RefundIssued(refund_id=str(field(refund, "id", "refund.")), amount=Money(amount, currency),
                        items=tuple(items), shipping_refunded=shipping,
                        payment_method=str(order["payment_method_title"]) if order.get("payment_method_title")
                        else None)


def _nonzero(amount: Any) -> bool:
    try:
        return Decimal(str(amount or "0")) != 0
    except InvalidOperation:
        return False


def _shipped(order: Mapping[str, Any]) -> OrderShipped | None:
    meta = {str(m.get("key")): m.get("value") for m in order.get("meta_data") or [] if isinstance(m, dict)}
    tracking = meta.get("_wc_shipment_tracking_items")
    if not isinstance(tracking, list) or not tracking or not isinstance(tracking[-1], dict):
        return None
    parcel = tracking[-1]
    return OrderShipped(
        shipment_id=str(parcel.get("tracking_id") or parcel.get("tracking_number") or ""),
        carrier=str(parcel.get("custom_tracking_provider") or parcel.get("tracking_provider") or ""),
        tracking_number=str(parcel.get("tracking_number") or ""),
        tracking_url=str(parcel.get("custom_tracking_link") or ""), items=_parcel_items(order))
