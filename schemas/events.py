"""The order event model: typed, immutable mirrors of the Avro records in ``avro/order_event``.

Field names and record names match the Avro schema one for one, so that
:mod:`schemas.records` can convert both ways without a hand-written mapping.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime


class EventType(str, enum.Enum):  # noqa: UP042 - str() must stay as it is
    ORDER_PLACED = "ORDER_PLACED"
    ITEM_OUT_OF_STOCK = "ITEM_OUT_OF_STOCK"
    ORDER_SHIPPED = "ORDER_SHIPPED"
    ORDER_DELIVERED = "ORDER_DELIVERED"
    PRICE_ERROR = "PRICE_ERROR"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    REFUND_ISSUED = "REFUND_ISSUED"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERY_PROBLEM = "DELIVERY_PROBLEM"


class StockOption(str, enum.Enum):  # noqa: UP042 - str() must stay as it is
    WAIT_FOR_RESTOCK = "WAIT_FOR_RESTOCK"
    TAKE_SUBSTITUTE = "TAKE_SUBSTITUTE"
    CANCEL_ITEM = "CANCEL_ITEM"


class PriceResolution(str, enum.Enum):  # noqa: UP042 - str() must stay as it is
    HELD_PENDING_CHOICE = "HELD_PENDING_CHOICE"
    CANCELLED_REFUNDED = "CANCELLED_REFUNDED"
    HONOURED = "HONOURED"


class CancelReason(str, enum.Enum):  # noqa: UP042 - str() must stay as it is
    CUSTOMER_REQUEST = "CUSTOMER_REQUEST"  # asked for it, e.g. answering an out-of-stock e-mail
    OUT_OF_STOCK = "OUT_OF_STOCK"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    SHOP_DECISION = "SHOP_DECISION"


class DeliveryProblemKind(str, enum.Enum):  # noqa: UP042 - str() must stay as it is
    ATTEMPTED = "ATTEMPTED"  # nobody was home: pick it up or choose another day
    DELAYED = "DELAYED"  # later than promised: a new estimate
    RETURNED_TO_SENDER = "RETURNED_TO_SENDER"
    LOST = "LOST"


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units (cents) of an ISO 4217 currency; never a float."""

    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    email: str
    display_name: str
    locale: str
    time_zone: str


@dataclass(frozen=True, slots=True)
class LineItem:
    sku: str
    name: str
    quantity: int
    unit_price: Money


@dataclass(frozen=True, slots=True)
class Address:
    recipient: str
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True)
class DateRange:
    earliest: date
    latest: date


@dataclass(frozen=True, slots=True)
class Discount:
    """Taken off the subtotal; ``code`` is what the customer entered, ``description`` what it is."""

    amount: Money
    code: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    """The order's money adds up as :mod:`schemas.sums` says: ``total = subtotal - discount + shipping_cost``,
    plus ``tax`` only when the prices exclude it. ``prices_include_tax`` None (events written before schema
    version 3, which could not say) means whichever reading the sums add up to (:func:`schemas.sums.tax_included`)."""

    items: tuple[LineItem, ...]
    subtotal: Money
    shipping_cost: Money
    tax: Money
    total: Money
    shipping_address: Address
    delivery_estimate: DateRange | None = None
    prices_include_tax: bool | None = None
    discount: Discount | None = None


@dataclass(frozen=True, slots=True)
class Substitute:
    sku: str
    name: str
    unit_price: Money


@dataclass(frozen=True, slots=True)
class OutOfStockItem:
    sku: str
    name: str
    quantity: int
    unit_price: Money
    restock_estimate: date | None = None
    substitute: Substitute | None = None


@dataclass(frozen=True, slots=True)
class ItemOutOfStock:
    items: tuple[OutOfStockItem, ...]
    options: tuple[StockOption, ...]
    default_action: StockOption
    respond_by: date | None = None


@dataclass(frozen=True, slots=True)
class ParcelItem:
    sku: str
    name: str
    quantity: int


@dataclass(frozen=True, slots=True)
class OrderShipped:
    shipment_id: str
    carrier: str
    tracking_number: str
    tracking_url: str
    items: tuple[ParcelItem, ...]
    remaining_items: tuple[ParcelItem, ...] = ()
    estimated_delivery: date | None = None


@dataclass(frozen=True, slots=True)
class OrderDelivered:
    shipment_id: str
    delivered_at: datetime
    items: tuple[ParcelItem, ...]
    left_at: str | None = None


@dataclass(frozen=True, slots=True)
class PriceError:
    item: ParcelItem
    shown_price: Money
    correct_price: Money
    resolution: PriceResolution
    respond_by: date | None = None


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    """The whole order (``items`` empty) or some of its items will not be delivered."""

    reason: CancelReason
    items: tuple[ParcelItem, ...] = ()
    refund: Money | None = None  # what the customer gets back for it, if anything was paid

    @property
    def whole_order(self) -> bool:
        return not self.items


@dataclass(frozen=True, slots=True)
class RefundIssued:
    refund_id: str
    amount: Money
    items: tuple[ParcelItem, ...] = ()
    shipping_refunded: bool = False
    payment_method: str | None = None  # a hint the customer recognises, e.g. "Visa ending 4242"
    expected_by: date | None = None  # when the money should be on the customer's account


@dataclass(frozen=True, slots=True)
class OutForDelivery:
    shipment_id: str
    carrier: str
    tracking_url: str
    window_start: datetime | None = None  # the delivery window today, if the carrier gives one
    window_end: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliveryProblem:
    shipment_id: str
    kind: DeliveryProblemKind
    carrier: str
    tracking_url: str
    pickup_location: str | None = None  # where an attempted parcel waits
    pickup_by: date | None = None
    reschedule_url: str | None = None
    new_estimate: date | None = None


Payload = (
    OrderPlaced | ItemOutOfStock | OrderShipped | OrderDelivered | PriceError
    | OrderCancelled | RefundIssued | OutForDelivery | DeliveryProblem
)

PAYLOAD_TYPE: dict[EventType, type[Payload]] = {
    EventType.ORDER_PLACED: OrderPlaced,
    EventType.ITEM_OUT_OF_STOCK: ItemOutOfStock,
    EventType.ORDER_SHIPPED: OrderShipped,
    EventType.ORDER_DELIVERED: OrderDelivered,
    EventType.PRICE_ERROR: PriceError,
    EventType.ORDER_CANCELLED: OrderCancelled,
    EventType.REFUND_ISSUED: RefundIssued,
    EventType.OUT_FOR_DELIVERY: OutForDelivery,
    EventType.DELIVERY_PROBLEM: DeliveryProblem,
}


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """The envelope every event travels in; the Kafka key is ``order_id``."""

    event_id: str
    event_type: EventType
    occurred_at: datetime
    order_id: str
    customer: Customer
    payload: Payload
    order_url: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerPreferences:
    """Latest preferences of one customer (compacted topic keyed by customer id)."""

    customer_id: str
    informational_updates: bool
    updated_at: datetime
