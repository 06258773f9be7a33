"""Saleor: ``Saleor-Signature`` (JWS, RS256, keys from the shop's JWKS: :mod:`saleor_signature`) and its order
events mapped to ordernotify events. The payload is Saleor's default (non-subscription) order payload: a JSON
list holding the order.

| ``Saleor-Event`` | event |
|---|---|
| ``order_created`` | ORDER_PLACED (gross prices: ``prices_include_tax`` true, the tax is gross minus net) |
| ``order_cancelled`` | ORDER_CANCELLED (the whole order, the shop's decision) |
| anything else | none |

Event ids: uuid5 over the event name, the order id and the payload's ``meta.issued_at`` (Saleor sends the
same stored payload on every retry). Locale from the order's ``language_code``, else the shop default; the time
zone is always the shop default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.adapters.base import ShopDefaults
from gateway.adapters.reading import (
    checked,
    event_id,
    field,
    header,
    json_object,
    minor_units,
    refused,
    text,
    timestamp,
    whole_number,
)
from gateway.adapters.saleor_signature import JwksKeys, bad_signature, verify_detached_jws
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
    Payload,
)

PLATFORM = "saleor"
FIELDS = {"payload.total": "total_gross_amount", "payload.subtotal": "lines[].unit_price_gross_amount",
          "payload.discount.amount": "undiscounted_total_gross_amount", "payload.tax": "total_net_amount",
          "payload.shipping_cost": "shipping_price_gross_amount", "customer.email": "user_email",
          "customer.locale": "language_code", "payload.items": "lines"}


class SaleorAdapter:
    """One Saleor shop's order webhooks, signed with the keys its JWKS publishes."""

    name = PLATFORM

    def __init__(self, keys: JwksKeys) -> None:
        self._keys = keys

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        signature = header(headers, "Saleor-Signature")
        if not signature:
            raise bad_signature("is missing")
        verify_detached_jws(signature, body, self._keys)

    def events(self, headers: Mapping[str, str], body: bytes, defaults: ShopDefaults) -> list[OrderEvent]:
        name = header(headers, "Saleor-Event").lower()
        if name not in ("order_created", "order_cancelled"):
            return []
        order = _order(body)
        if name == "order_created":
            return [_event(EventType.ORDER_PLACED, name, order, _placed(order, defaults), defaults)]
        return [_event(EventType.ORDER_CANCELLED, name, order, OrderCancelled(reason=CancelReason.SHOP_DECISION),
                       defaults)]


def adapter_from_settings(settings: Settings) -> SaleorAdapter:
    return SaleorAdapter(JwksKeys(settings.saleor_jwks_url, settings.saleor_jwks_cache_s))


def _order(body: bytes) -> Mapping[str, Any]:
    data: Any = json_object(b'{"orders": ' + body + b"}")["orders"]
    if not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], dict):
        raise refused("body", "is not Saleor's order payload (a list holding one order)")
    return data[0]


def _event(kind: EventType, name: str, order: Mapping[str, Any], payload: Payload,
           defaults: ShopDefaults) -> OrderEvent:
    meta = order.get("meta") if isinstance(order.get("meta"), dict) else {}
    issued = str((meta or {}).get("issued_at") or field(order, "created"))
    email = text(order, "user_email")
    customer = Customer(customer_id=str(order.get("user_id") or f"guest:{field(order, 'id')}"), email=email,
                        display_name=" ".join(str(((order.get("billing_address") or {}).get(k)) or "")
                                              for k in ("first_name", "last_name")).strip(),
                        locale=str(order.get("language_code") or defaults.locale), time_zone=defaults.time_zone)
    return checked(OrderEvent(
        event_id=event_id(PLATFORM, f"{name}/{order['id']}/{issued}", kind.value), event_type=kind,
        occurred_at=timestamp(issued, "meta.issued_at", assume_utc=True), order_id=str(order["id"]),
        customer=customer, payload=payload), FIELDS)


def _placed(order: Mapping[str, Any], defaults: ShopDefaults) -> OrderPlaced:
    currency = str(order.get("currency") or defaults.currency or text(order, "currency"))

    def money(name: str, source: Mapping[str, Any] = order, path: str = "") -> Money:
        return Money(minor_units(field(source, name, path), currency, f"{path}{name}"), currency)

    items = tuple(
        LineItem(sku=str(line.get("product_sku") or line.get("variant_id") or field(line, "id", f"lines[{i}].")),
                 name=" ".join(str(line.get(k) or "") for k in ("product_name", "variant_name")).strip(),
                 quantity=whole_number(field(line, "quantity", f"lines[{i}]."), f"lines[{i}].quantity"),
                 unit_price=money("unit_price_gross_amount", line, f"lines[{i}]."))
        for i, line in enumerate(order.get("lines") or []))
    total, net = money("total_gross_amount"), money("total_net_amount")
    undiscounted = money("undiscounted_total_gross_amount") if order.get("undiscounted_total_gross_amount") else total
    discount = undiscounted.amount_minor - total.amount_minor
    address: Mapping[str, Any] = order.get("shipping_address") or {}
    return OrderPlaced(
        items=items, subtotal=Money(sum(i.unit_price.amount_minor * i.quantity for i in items), currency),
        shipping_cost=money("shipping_price_gross_amount"), total=total, prices_include_tax=True,
        tax=Money(total.amount_minor - net.amount_minor, currency),
        discount=Discount(Money(discount, currency)) if discount > 0 else None,
        shipping_address=Address(
            recipient=" ".join(str(address.get(k) or "") for k in ("first_name", "last_name")).strip()
            or text(address, "company_name", "shipping_address."),
            line1=text(address, "street_address_1", "shipping_address."),
            city=text(address, "city", "shipping_address."), postal_code=str(address.get("postal_code") or ""),
            country=text(address, "country", "shipping_address."),
            line2=str(address["street_address_2"]) if address.get("street_address_2") else None,
            region=str(address["country_area"]) if address.get("country_area") else None))
