"""Valid order events for tests, with every field overridable.

Each ``*_event`` function returns a :class:`schemas.events.OrderEvent` that passes
:func:`schemas.validation.validate_event`: a fresh uuid4 ``event_id``, ``occurred_at``
now in UTC, and a payload that reads like a real order. Pass keyword arguments to change
the envelope (``order_id``, ``customer``, ``event_id``, ``occurred_at``, ``order_url``)
or the payload (any payload field name, e.g. ``items=...``, ``carrier=...``).
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from schemas.events import (
    PAYLOAD_TYPE,
    Address,
    CancelReason,
    Customer,
    DateRange,
    DeliveryProblem,
    DeliveryProblemKind,
    Discount,
    EventType,
    ItemOutOfStock,
    LineItem,
    Money,
    OrderCancelled,
    OrderDelivered,
    OrderEvent,
    OrderPlaced,
    OrderShipped,
    OutForDelivery,
    OutOfStockItem,
    ParcelItem,
    Payload,
    PriceError,
    PriceResolution,
    RefundIssued,
    StockOption,
    Substitute,
)

DEFAULT_ORDER_ID = "1234"
_ENVELOPE = ("event_id", "occurred_at", "order_id", "customer", "order_url")


def money(amount_minor: int, currency: str = "EUR") -> Money:
    return Money(amount_minor=amount_minor, currency=currency)


def make_customer(**overrides: Any) -> Customer:
    fields: dict[str, Any] = {
        "customer_id": "cust-1",
        "email": "ada@example.org",
        "display_name": "Ada Lovelace",
        "locale": "en",
        "time_zone": "Europe/London",
    }
    fields.update(overrides)
    return Customer(**fields)


def make_address(**overrides: Any) -> Address:
    fields: dict[str, Any] = {
        "recipient": "Ada Lovelace",
        "line1": "12 St James's Square",
        "city": "London",
        "postal_code": "SW1Y 4JH",
        "country": "GB",
    }
    fields.update(overrides)
    return Address(**fields)


def line_item(sku: str = "SKU-1", name: str = "Blue mug", quantity: int = 1, price_minor: int = 1299,
              currency: str = "EUR") -> LineItem:
    return LineItem(sku=sku, name=name, quantity=quantity, unit_price=money(price_minor, currency))


def parcel_item(sku: str = "SKU-1", name: str = "Blue mug", quantity: int = 1) -> ParcelItem:
    return ParcelItem(sku=sku, name=name, quantity=quantity)


def out_of_stock_item(sku: str = "SKU-1", name: str = "Blue mug", quantity: int = 1, price_minor: int = 1299,
                      currency: str = "EUR", restock_estimate: date | None = date(2030, 1, 15),
                      substitute: Substitute | None = None) -> OutOfStockItem:
    return OutOfStockItem(sku=sku, name=name, quantity=quantity, unit_price=money(price_minor, currency),
                          restock_estimate=restock_estimate, substitute=substitute)


def make_event(event_type: EventType, payload: Payload, **envelope: Any) -> OrderEvent:
    """An envelope around ``payload``; the other ``*_event`` functions all end here."""
    unknown = set(envelope) - set(_ENVELOPE)
    if unknown:
        raise TypeError(f"unknown envelope fields {sorted(unknown)}")
    if not isinstance(payload, PAYLOAD_TYPE[event_type]):
        raise TypeError(f"{event_type.value} needs a {PAYLOAD_TYPE[event_type].__name__} payload")
    return OrderEvent(
        event_id=envelope.get("event_id") or str(uuid.uuid4()),
        event_type=event_type,
        occurred_at=envelope.get("occurred_at") or datetime.now(UTC),
        order_id=envelope.get("order_id", DEFAULT_ORDER_ID),
        customer=envelope.get("customer") or make_customer(),
        payload=payload,
        order_url=envelope.get("order_url"),
    )


def _split(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    envelope = {k: v for k, v in overrides.items() if k in _ENVELOPE}
    payload = {k: v for k, v in overrides.items() if k not in _ENVELOPE}
    return envelope, payload


def _payload(cls: type[Any], defaults: dict[str, Any], overrides: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(overrides) - names
    if unknown:
        raise TypeError(f"{cls.__name__} has no fields {sorted(unknown)}")
    return cls(**{**defaults, **overrides})


def placed_event(**overrides: Any) -> OrderEvent:
    """Sums are computed from ``items``, ``discount``, ``shipping_cost``, ``tax`` and ``prices_include_tax`` unless
    given, so that they add up; shipping defaults to 4.99 in the items' currency, tax to 0 added on top."""
    envelope, fields = _split(overrides)
    items: tuple[LineItem, ...] = tuple(fields.pop("items", (line_item(),)))
    currency = items[0].unit_price.currency
    subtotal = sum(i.unit_price.amount_minor * i.quantity for i in items)
    shipping = fields.get("shipping_cost", money(499, currency))
    tax = fields.get("tax", money(0, currency))
    discount: Discount | None = fields.get("discount")
    total = subtotal - (discount.amount.amount_minor if discount else 0) + shipping.amount_minor
    if not fields.get("prices_include_tax", False):
        total += tax.amount_minor
    defaults = {
        "items": items,
        "subtotal": money(subtotal, currency),
        "shipping_cost": shipping,
        "tax": tax,
        "total": money(total, currency),
        "shipping_address": make_address(),
        "delivery_estimate": DateRange(date.today() + timedelta(days=2), date.today() + timedelta(days=4)),
    }
    return make_event(EventType.ORDER_PLACED, _payload(OrderPlaced, defaults, fields), **envelope)


def out_of_stock_event(**overrides: Any) -> OrderEvent:
    envelope, fields = _split(overrides)
    defaults = {
        "items": (out_of_stock_item(substitute=Substitute("SKU-1B", "Green mug", money(1399))),),
        "options": (StockOption.WAIT_FOR_RESTOCK, StockOption.TAKE_SUBSTITUTE, StockOption.CANCEL_ITEM),
        "default_action": StockOption.WAIT_FOR_RESTOCK,
        "respond_by": date.today() + timedelta(days=3),
    }
    return make_event(EventType.ITEM_OUT_OF_STOCK, _payload(ItemOutOfStock, defaults, fields), **envelope)


def price_error_event(**overrides: Any) -> OrderEvent:
    envelope, fields = _split(overrides)
    defaults = {
        "item": parcel_item(),
        "shown_price": money(129),
        "correct_price": money(1299),
        "resolution": PriceResolution.HELD_PENDING_CHOICE,
        "respond_by": date.today() + timedelta(days=3),
    }
    return make_event(EventType.PRICE_ERROR, _payload(PriceError, defaults, fields), **envelope)


def shipped_event(**overrides: Any) -> OrderEvent:
    envelope, fields = _split(overrides)
    shipment_id = fields.get("shipment_id", "SHIP-1")
    tracking_number = fields.get("tracking_number", f"TRK{shipment_id.replace('-', '')}")
    defaults = {
        "shipment_id": shipment_id,
        "carrier": "DHL",
        "tracking_number": tracking_number,
        "tracking_url": f"https://tracking.example/{tracking_number}",
        "items": (parcel_item(),),
        "remaining_items": (),
        "estimated_delivery": date.today() + timedelta(days=2),
    }
    return make_event(EventType.ORDER_SHIPPED, _payload(OrderShipped, defaults, fields), **envelope)


def delivered_event(**overrides: Any) -> OrderEvent:
    envelope, fields = _split(overrides)
    defaults = {
        "shipment_id": "SHIP-1",
        "delivered_at": datetime.now(UTC),
        "items": (parcel_item(),),
        "left_at": "With your neighbour at number 14",
    }
    return make_event(EventType.ORDER_DELIVERED, _payload(OrderDelivered, defaults, fields), **envelope)


def cancelled_event(**overrides: Any) -> OrderEvent:
    """The whole order, cancelled at the customer's request, with a refund; pass ``items=`` for some items."""
    envelope, fields = _split(overrides)
    defaults = {"reason": CancelReason.CUSTOMER_REQUEST, "items": (), "refund": money(3097)}
    return make_event(EventType.ORDER_CANCELLED, _payload(OrderCancelled, defaults, fields), **envelope)


def refund_event(**overrides: Any) -> OrderEvent:
    envelope, fields = _split(overrides)
    defaults = {
        "refund_id": "RF-1",
        "amount": money(1299),
        "items": (parcel_item(),),
        "shipping_refunded": False,
        "payment_method": "Visa ending 4242",
        "expected_by": date.today() + timedelta(days=5),
    }
    return make_event(EventType.REFUND_ISSUED, _payload(RefundIssued, defaults, fields), **envelope)


def out_for_delivery_event(**overrides: Any) -> OrderEvent:
    envelope, fields = _split(overrides)
    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    defaults = {
        "shipment_id": "SHIP-1",
        "carrier": "DHL",
        "tracking_url": "https://tracking.example/TRKSHIP1",
        "window_start": today,
        "window_end": today + timedelta(hours=3),
    }
    return make_event(EventType.OUT_FOR_DELIVERY, _payload(OutForDelivery, defaults, fields), **envelope)


def delivery_problem_event(**overrides: Any) -> OrderEvent:
    """Nobody was home: the parcel waits at a pick-up point; pass ``kind=`` for the others."""
    envelope, fields = _split(overrides)
    defaults = {
        "shipment_id": "SHIP-1",
        "kind": DeliveryProblemKind.ATTEMPTED,
        "carrier": "DHL",
        "tracking_url": "https://tracking.example/TRKSHIP1",
        "pickup_location": "DHL Packstation 112, Hauptstraße 5",
        "pickup_by": date.today() + timedelta(days=7),
        "reschedule_url": "https://tracking.example/TRKSHIP1/reschedule",
        "new_estimate": None,
    }
    return make_event(EventType.DELIVERY_PROBLEM, _payload(DeliveryProblem, defaults, fields), **envelope)
