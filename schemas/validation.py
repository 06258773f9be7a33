"""Business rules the Avro types cannot express: positive quantities, real currencies,
one clean e-mail address, sane timestamps and sizes, sums that add up (:mod:`schemas.sums`).

The producer refuses an event that breaks them (naming the field); the consumer
sends such an event to the dead-letter topic instead of e-mailing nonsense.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from babel.numbers import list_currencies

from schemas.events import (
    PAYLOAD_TYPE,
    DeliveryProblem,
    Discount,
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
    PriceError,
    RefundIssued,
)
from schemas.exceptions import EventValidationError
from schemas.sums import check_sums

MAX_TEXT = 1000  # characters in any one text field
MAX_ITEMS = 500  # line items in one event
MAX_FUTURE = timedelta(hours=1)  # clock skew we tolerate on occurred_at
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
# Encoded bytes of one event: below the events topic's record limit (--max-record-bytes, at least 1 MiB,
# key, headers and batch overhead included), so a valid event always fits one record there and, again,
# one dead letter.
MAX_EVENT_BYTES = 1_000_000

# One plain address: no display name, comments, quotes, spaces or control
# characters; this refuses the CVE-2023-27043 family ("a@b.org(<c@d.com>").
_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@"
    r"(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_CURRENCIES = frozenset(list_currencies())


def validate_event(event: OrderEvent, now: datetime | None = None) -> None:
    """Raise :class:`EventValidationError` naming the first field that breaks a rule."""
    now = now or datetime.now(UTC)
    expected = PAYLOAD_TYPE[event.event_type]
    if not isinstance(event.payload, expected):
        raise EventValidationError(
            "payload", f"event_type {event.event_type.value} needs a {expected.__name__} payload"
        )
    _check_uuid(event.event_id)
    if event.occurred_at > now + MAX_FUTURE:
        raise EventValidationError("occurred_at", f"{event.occurred_at.isoformat()} is in the future")
    if event.occurred_at < EARLIEST:
        raise EventValidationError("occurred_at", f"{event.occurred_at.isoformat()} is before 2000")
    _check_text("order_id", event.order_id, single_line=True)
    customer = event.customer
    _check_text("customer.customer_id", customer.customer_id, single_line=True)
    _check_text("customer.display_name", customer.display_name, single_line=True, allow_empty=True)
    if not _EMAIL.match(customer.email) or "=?" in customer.email:  # "=?": an RFC 2047 encoded word
        raise EventValidationError("customer.email", f"{_redact(customer.email)} is not a plain e-mail address")
    if not _LOCALE.match(customer.locale):
        raise EventValidationError("customer.locale", f"{customer.locale!r} is not a BCP 47 tag such as en-GB")
    _check_text("customer.time_zone", customer.time_zone, single_line=True)
    if event.order_url is not None and not event.order_url.startswith(("https://", "http://")):
        raise EventValidationError("order_url", "must be an http(s) URL")
    _check_payload(event.payload)


def check_encoded_size(data: bytes) -> None:
    """Raise :class:`EventValidationError` if the encoded event is too big for one Kafka record."""
    if len(data) > MAX_EVENT_BYTES:
        raise EventValidationError("", f"the encoded event is {len(data)} bytes; at most {MAX_EVENT_BYTES}")


def _check_payload(payload: object) -> None:
    if isinstance(payload, OrderPlaced):
        _check_items("payload.items", payload.items)
        for name in ("subtotal", "shipping_cost", "tax", "total"):
            _check_money(f"payload.{name}", getattr(payload, name))
        if payload.discount is not None:
            _check_discount("payload.discount", payload.discount)
        amounts = [payload.subtotal, payload.shipping_cost, payload.tax, payload.total]
        if payload.discount is not None:
            amounts.append(payload.discount.amount)
        currencies = {item.unit_price.currency for item in payload.items} | {m.currency for m in amounts}
        if len(currencies) > 1:
            raise EventValidationError("payload", f"mixes currencies {sorted(currencies)}")
        if payload.delivery_estimate and payload.delivery_estimate.latest < payload.delivery_estimate.earliest:
            raise EventValidationError("payload.delivery_estimate", "latest is before earliest")
        check_sums(payload)
    elif isinstance(payload, ItemOutOfStock):
        _check_items("payload.items", payload.items)
        if not payload.options:
            raise EventValidationError("payload.options", "must offer the customer at least one option")
        if payload.default_action not in payload.options:
            raise EventValidationError("payload.default_action", "must be one of the offered options")
        for i, item in enumerate(payload.items):
            if item.substitute is not None:
                _check_text(f"payload.items[{i}].substitute.name", item.substitute.name)
                _check_money(f"payload.items[{i}].substitute.unit_price", item.substitute.unit_price)
    elif isinstance(payload, OrderShipped):
        _check_items("payload.items", payload.items)
        _check_items("payload.remaining_items", payload.remaining_items, allow_empty=True)
        _check_text("payload.shipment_id", payload.shipment_id, single_line=True)
        _check_text("payload.carrier", payload.carrier, single_line=True)
        _check_text("payload.tracking_number", payload.tracking_number, single_line=True)
        if not payload.tracking_url.startswith(("https://", "http://")):
            raise EventValidationError("payload.tracking_url", "must be an http(s) URL")
    elif isinstance(payload, OrderDelivered):
        _check_items("payload.items", payload.items)
        _check_text("payload.shipment_id", payload.shipment_id, single_line=True)
        if payload.left_at is not None:
            _check_text("payload.left_at", payload.left_at)
    elif isinstance(payload, PriceError):
        _check_items("payload.item", (payload.item,))
        _check_money("payload.shown_price", payload.shown_price)
        _check_money("payload.correct_price", payload.correct_price)
        if payload.shown_price.currency != payload.correct_price.currency:
            raise EventValidationError("payload.correct_price", "currency differs from shown_price")
    elif isinstance(payload, OrderCancelled):
        _check_items("payload.items", payload.items, allow_empty=True)  # none: the whole order
        if payload.refund is not None:
            _check_money("payload.refund", payload.refund)
    elif isinstance(payload, RefundIssued):
        _check_text("payload.refund_id", payload.refund_id, single_line=True)
        _check_money("payload.amount", payload.amount)
        if payload.amount.amount_minor == 0:
            raise EventValidationError("payload.amount.amount_minor", "a refund of nothing is not news")
        # no items and no shipping: money given back for the order, not for what it holds (a goodwill refund,
        # a price corrected after the sale), which the customer is told as the amount alone
        _check_items("payload.items", payload.items, allow_empty=True)
        if payload.payment_method is not None:
            _check_text("payload.payment_method", payload.payment_method, single_line=True)
    elif isinstance(payload, OutForDelivery):
        _check_parcel_link("payload", payload.shipment_id, payload.carrier, payload.tracking_url)
        if (payload.window_start is None) != (payload.window_end is None):
            raise EventValidationError("payload.window_end", "give both ends of the delivery window, or neither")
        if payload.window_start and payload.window_end and payload.window_end < payload.window_start:
            raise EventValidationError("payload.window_end", "is before window_start")
    elif isinstance(payload, DeliveryProblem):
        _check_parcel_link("payload", payload.shipment_id, payload.carrier, payload.tracking_url)
        if payload.pickup_location is not None:
            _check_text("payload.pickup_location", payload.pickup_location)
        if payload.reschedule_url is not None and not payload.reschedule_url.startswith(("https://", "http://")):
            raise EventValidationError("payload.reschedule_url", "must be an http(s) URL")


def _check_parcel_link(path: str, shipment_id: str, carrier: str, tracking_url: str) -> None:
    _check_text(f"{path}.shipment_id", shipment_id, single_line=True)
    _check_text(f"{path}.carrier", carrier, single_line=True)
    if not tracking_url.startswith(("https://", "http://")):
        raise EventValidationError(f"{path}.tracking_url", "must be an http(s) URL")


def _check_items(
    path: str, items: tuple[LineItem | OutOfStockItem | ParcelItem, ...], allow_empty: bool = False
) -> None:
    if not items and not allow_empty:
        raise EventValidationError(path, "must list at least one item")
    if len(items) > MAX_ITEMS:
        raise EventValidationError(path, f"lists {len(items)} items; at most {MAX_ITEMS}")
    for i, item in enumerate(items):
        item_path = path if path.endswith(".item") else f"{path}[{i}]"
        _check_text(f"{item_path}.sku", item.sku, single_line=True)
        _check_text(f"{item_path}.name", item.name)
        quantity = item.quantity
        if quantity <= 0:
            raise EventValidationError(f"{item_path}.quantity", f"must be positive, not {quantity}")
        price = getattr(item, "unit_price", None)
        if price is not None:
            _check_money(f"{item_path}.unit_price", price)


def _check_money(path: str, money: Money) -> None:
    if money.amount_minor < 0:
        raise EventValidationError(f"{path}.amount_minor", f"must not be negative, not {money.amount_minor}")
    if money.currency not in _CURRENCIES:
        raise EventValidationError(f"{path}.currency", f"{money.currency!r} is not an ISO 4217 currency code")


def _check_discount(path: str, discount: Discount) -> None:
    _check_money(f"{path}.amount", discount.amount)
    if discount.code is not None:
        _check_text(f"{path}.code", discount.code, single_line=True)
    if discount.description is not None:
        _check_text(f"{path}.description", discount.description, single_line=True)


def _check_text(path: str, text: str, single_line: bool = False, allow_empty: bool = False) -> None:
    if not text and not allow_empty:
        raise EventValidationError(path, "must not be empty")
    if len(text) > MAX_TEXT:
        raise EventValidationError(path, f"is {len(text)} characters long; at most {MAX_TEXT}")
    if single_line and _CONTROL.search(text):
        raise EventValidationError(path, "must not contain line breaks or control characters")


def _check_uuid(value: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError:
        raise EventValidationError("event_id", f"{value!r} is not a UUID") from None


def _redact(address: str) -> str:
    """Enough of an address to recognise the mistake, not enough to identify the person."""
    return f"address of {len(address)} characters" if address else "an empty address"
