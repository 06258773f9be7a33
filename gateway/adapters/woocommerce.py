"""WooCommerce: ``X-WC-Webhook-Signature`` (base64 HMAC-SHA256 of the raw body with the webhook's secret) and the
``order.created`` / ``order.updated`` topics mapped to ordernotify events.

WooCommerce sends the whole order but no transition, so the news is worked out from the order's ``status``:

| status | event | its identity (uuid5 with the order id) |
|---|---|---|
| processing, on-hold (paid, or awaiting a bank transfer) | ORDER_PLACED | the order |
| completed, with tracking from the Shipment Tracking extension | ORDER_SHIPPED | the tracking number |
| cancelled | ORDER_CANCELLED (whole order, the shop's decision) | the order |
| refunded | REFUND_ISSUED (every item; the sum of the refunds) | the newest refund id |
| pending, failed, draft, completed without tracking, anything else | none | |

Limits: the identity is the news, not the delivery (WooCommerce's delivery id changes on every retry, and its
``date_modified`` changes with every edit of the order: a note added to a paid order would otherwise confirm it
again). So an order set to processing twice is confirmed once; a partial refund (status stays processing)
names no items in the payload and is not mapped; WooCommerce core knows no carrier, so "completed" is only
shipping news with the Shipment Tracking extension's ``_wc_shipment_tracking_items``. WooCommerce has no
customer time zone: the shop's default is used; the locale likewise unless a ``locale`` or ``wpml_language``
meta entry names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
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

PLATFORM = "woocommerce"
FIELDS = {"payload.total": "total", "payload.subtotal": "line_items[].subtotal", "payload.discount.amount":
          "discount_total", "payload.shipping_cost": "shipping_total", "payload.tax": "total_tax",
          "payload.prices_include_tax": "prices_include_tax", "customer.email": "billing.email",
          "payload.items": "line_items", "payload.tracking_url": "meta_data._wc_shipment_tracking_items"}


class WooCommerceAdapter:
    """One WooCommerce shop's order webhooks (the secret is the one set on the webhooks)."""

    name = PLATFORM

    def __init__(self, secret: str) -> None:
        self._secret = secret

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
            return [_event(EventType.ORDER_PLACED, order, order_id, _placed(order, defaults), defaults)]
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
                           defaults)]
        return []


def adapter_from_settings(settings: Settings) -> WooCommerceAdapter:
    return WooCommerceAdapter(settings.woocommerce_secret.reveal())


def _event(kind: EventType, order: Mapping[str, Any], identity: str, payload: Payload,
           defaults: ShopDefaults) -> OrderEvent:
    billing = _obj(order, "billing")
    meta = {str(m.get("key")): m.get("value") for m in order.get("meta_data") or [] if isinstance(m, dict)}
    locale = str(meta.get("locale") or meta.get("wpml_language") or defaults.locale)
    email = text(billing, "email", "billing.")
    customer_id = str(order.get("customer_id") or 0)
    customer = Customer(
        customer_id=customer_id if customer_id != "0" else f"guest:{order.get('id')}",  # 0: a guest checkout
        email=email, display_name=" ".join(str(billing.get(k) or "") for k in ("first_name", "last_name")).strip(),
        locale=locale, time_zone=defaults.time_zone)
    occurred = "date_modified_gmt" if order.get("date_modified_gmt") else "date_created_gmt"
    return checked(OrderEvent(
        event_id=event_id(PLATFORM, identity, kind.value), event_type=kind,
        occurred_at=timestamp(field(order, occurred), occurred, assume_utc=True), order_id=str(order["id"]),
        customer=customer, payload=payload), FIELDS)


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
        quantity = int(field(item, "quantity", f"line_items[{i}]."))
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
                            name=str(item.get("name") or ""), quantity=int(item.get("quantity") or 0))
                 for item in order.get("line_items") or [])


def _refund(order: Mapping[str, Any], defaults: ShopDefaults) -> RefundIssued:
    currency = str(order.get("currency") or defaults.currency or text(order, "currency"))
    refunds = [r for r in order.get("refunds") or [] if isinstance(r, dict)]
    if not refunds:
        raise refused("refunds", "is empty although the status is refunded")
    amount = sum(abs(minor_units(field(r, "total", f"refunds[{i}]."), currency, f"refunds[{i}].total"))
                 for i, r in enumerate(refunds))
    newest = max(refunds, key=lambda r: int(r.get("id") or 0))
    return RefundIssued(refund_id=str(field(newest, "id", "refunds[].")), amount=Money(amount, currency),
                        items=_parcel_items(order), shipping_refunded=True,
                        payment_method=str(order["payment_method_title"]) if order.get("payment_method_title")
                        else None)


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
