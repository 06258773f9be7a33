"""The rules of "few and meaningful", as pure functions of an event and what is already known.

No I/O here: the decider (:mod:`consumers.decide.decider`) and the closing of due windows
(:mod:`consumers.policy.windows`) read the state, ask these functions, and write the state back.

- order placed: sent at once, never merged, never throttled.
- item out of stock / price error: sent when the order's window closes, merged with the same
  kind of news; never throttled or opted out of (the customer must act).
- shipped / out for delivery / delivered: sent when the window closes, outside quiet hours and
  within the hourly limit, merged with each other; customers may opt out of them. Delivered
  supersedes pending shipped and out-for-delivery news of its parcel, and a pending attempted or
  delayed delivery of it (nothing left to do).
- delivery problem: sent when its window closes, never throttled or opted out of (the customer
  may have to act); it drops the parcel's pending out-for-delivery news; delivered after a
  problem is sent.
- cancellation: sent when its window closes, merged with refunds that arrive within it. A whole
  order's cancellation drops every other pending window of the order, and later news of the
  order is ``superseded``; some items' cancellation drops pending out-of-stock and price-error
  news of those items.
- refund: never dropped, never throttled: merged into an open cancellation window, else sent at once.
The README's "Notification rules" table says the same for shop owners.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from consumers.notification import Notification, Template
from schemas.events import (
    DeliveryProblem,
    DeliveryProblemKind,
    EventType,
    ItemOutOfStock,
    OrderCancelled,
    OrderDelivered,
    OrderEvent,
    OrderShipped,
    OutForDelivery,
    PriceError,
    RefundIssued,
)


class Group(enum.StrEnum):
    """Events of one order in the same group and window become one e-mail."""

    STOCK = "stock"
    PRICE = "price"
    SHIPPING = "shipping"
    CANCEL = "cancel"
    PROBLEM = "problem"


class SuppressReason(enum.StrEnum):
    DUPLICATE_DELIVERY = "duplicate_delivery"  # the same event_id again (redelivery, platform retry)
    ALREADY_CONFIRMED = "already_confirmed"  # a second ORDER_PLACED for a confirmed order
    DUPLICATE_NEWS = "duplicate_news"  # same parcel / item / price news under a new event id
    STALE = "stale"  # older than what the customer already knows (shipped after delivered)
    TOO_OLD = "too_old"  # beyond the staleness guard (backlog after an outage or a replay)
    OPTED_OUT = "opted_out"  # informational update for a customer who opted out
    SUPERSEDED = "superseded"  # the order (or the item) was cancelled, or the parcel arrived, before it was told


INFORMATIONAL = frozenset({EventType.ORDER_SHIPPED, EventType.OUT_FOR_DELIVERY, EventType.ORDER_DELIVERED})

GROUP_OF: dict[EventType, Group] = {
    EventType.ITEM_OUT_OF_STOCK: Group.STOCK,
    EventType.PRICE_ERROR: Group.PRICE,
    EventType.ORDER_SHIPPED: Group.SHIPPING,
    EventType.OUT_FOR_DELIVERY: Group.SHIPPING,
    EventType.ORDER_DELIVERED: Group.SHIPPING,
    EventType.ORDER_CANCELLED: Group.CANCEL,
    EventType.REFUND_ISSUED: Group.CANCEL,  # only while a cancellation window is open; else sent at once
    EventType.DELIVERY_PROBLEM: Group.PROBLEM,
}
ORDER_CANCELLED = "cancelled"  # the fact of a whole order's cancellation


@dataclass(frozen=True, slots=True)
class SendNow:
    notification: Notification


@dataclass(frozen=True, slots=True)
class Hold:
    group: Group


@dataclass(frozen=True, slots=True)
class Suppress:
    reason: SuppressReason


Decision = SendNow | Hold | Suppress


def facts_of(event: OrderEvent) -> frozenset[str]:
    """What the customer will know once told about ``event``: the unit of semantic deduplication."""
    payload = event.payload
    if isinstance(payload, OrderShipped):
        return frozenset({f"shipped:{payload.shipment_id}"})
    if isinstance(payload, OrderDelivered):
        return frozenset({f"delivered:{payload.shipment_id}"})
    if isinstance(payload, ItemOutOfStock):
        return frozenset(f"stock:{item.sku}:{item.restock_estimate or '-'}" for item in payload.items)
    if isinstance(payload, PriceError):
        return frozenset(
            {f"price:{payload.item.sku}:{payload.shown_price.amount_minor}:{payload.correct_price.amount_minor}"}
        )
    if isinstance(payload, OrderCancelled):
        if payload.whole_order:
            return frozenset({ORDER_CANCELLED})
        return frozenset(f"cancelled:{item.sku}" for item in payload.items)
    if isinstance(payload, RefundIssued):
        return frozenset({f"refund:{payload.refund_id}"})
    if isinstance(payload, OutForDelivery):
        return frozenset({f"out_for_delivery:{payload.shipment_id}:{_day(event, payload.window_start)}"})
    if isinstance(payload, DeliveryProblem):
        # the day too: a second attempt (or "late again") on another day is news again, the same report is not
        estimate = payload.new_estimate or "-"
        return frozenset({f"problem:{payload.shipment_id}:{payload.kind.value}:{estimate}:{_day(event, None)}"})
    return frozenset({"placed"})


def _day(event: OrderEvent, moment: datetime | None) -> str:
    """The calendar day (UTC) a last-mile report is about: its delivery window's, or when it happened."""
    return (moment or event.occurred_at).astimezone(UTC).date().isoformat()


def _parcel_of(event: OrderEvent) -> str | None:
    payload = event.payload
    if isinstance(payload, OrderShipped | OutForDelivery | OrderDelivered | DeliveryProblem):
        return payload.shipment_id
    return None


def _cancelled_items(event: OrderEvent, known: frozenset[str]) -> bool:
    """Out-of-stock or price-error news only about items already cancelled."""
    payload = event.payload
    if isinstance(payload, ItemOutOfStock):
        return all(f"cancelled:{item.sku}" in known for item in payload.items)
    if isinstance(payload, PriceError):
        return f"cancelled:{payload.item.sku}" in known
    return False


def decide(
    event: OrderEvent, known: frozenset[str], opted_out: bool, now: datetime, max_age: timedelta,
    joins_cancellation: bool = False,
) -> Decision:
    """What to do with a new (never seen ``event_id``) event, given the order's known facts.

    ``joins_cancellation``: a refund whose cancellation waits in its window (see :func:`refund_joins`)."""
    if now - event.occurred_at > max_age:
        return Suppress(SuppressReason.TOO_OLD)
    facts = facts_of(event)
    if event.event_type is EventType.REFUND_ISSUED:  # money back is always told, cancelled order or not
        if facts <= known:
            return Suppress(SuppressReason.DUPLICATE_NEWS)
        return Hold(Group.CANCEL) if joins_cancellation else SendNow(Notification.for_event(event))
    if ORDER_CANCELLED in known or _cancelled_items(event, known):
        return Suppress(SuppressReason.DUPLICATE_NEWS if facts <= known else SuppressReason.SUPERSEDED)
    if event.event_type is EventType.ORDER_PLACED:
        if "placed" in known:
            return Suppress(SuppressReason.ALREADY_CONFIRMED)
        if any(fact.startswith(("shipped:", "delivered:")) for fact in known):
            return Suppress(SuppressReason.STALE)
        return SendNow(Notification.for_event(event))
    parcel = _parcel_of(event)
    if parcel is not None and event.event_type is not EventType.ORDER_DELIVERED:
        if f"delivered:{parcel}" in known:
            return Suppress(SuppressReason.STALE)
        if event.event_type is EventType.ORDER_SHIPPED and any(
                fact.startswith(f"out_for_delivery:{parcel}:") for fact in known):
            return Suppress(SuppressReason.STALE)
    if facts <= known:
        return Suppress(SuppressReason.DUPLICATE_NEWS)
    if event.event_type in INFORMATIONAL and opted_out:
        return Suppress(SuppressReason.OPTED_OUT)
    return Hold(GROUP_OF[event.event_type])


def refund_joins(refund: OrderEvent, pending_cancellations: list[OrderEvent]) -> bool:
    """Whether a refund belongs in the e-mail of a cancellation still waiting in its window: the whole
    order's, or one of the same items ("cancelled, and your refund of X is on its way"). A refund of
    something else (a lost parcel, a return) is news of its own, sent at once."""
    payload = refund.payload
    if not isinstance(payload, RefundIssued):
        return False
    cancelled_skus: set[str] = set()
    for event in pending_cancellations:
        if isinstance(event.payload, OrderCancelled):
            if event.payload.whole_order:
                return True
            cancelled_skus.update(item.sku for item in event.payload.items)
    return bool(payload.items) and {item.sku for item in payload.items} <= cancelled_skus


def superseded_by(event: OrderEvent, pending: list[tuple[Group, OrderEvent]],
                  known: frozenset[str] = frozenset()) -> list[OrderEvent]:
    """Pending (not yet told) news of the order that ``event`` makes pointless to send; ``known``: the
    order's facts before ``event``.

    A whole order's cancellation: everything but other cancellations and refunds. Some items'
    cancellation: out-of-stock and price-error news of those items only. A delivery problem: the
    parcel's pending out-for-delivery news. A delivery: an attempted or delayed delivery of the same
    parcel (its shipped and out-for-delivery news merge into the delivery e-mail instead, see
    :func:`compose`)."""
    payload = event.payload
    if isinstance(payload, OrderCancelled):
        if payload.whole_order:
            return [e for group, e in pending if group is not Group.CANCEL]
        cancelled = known | facts_of(event)  # with the order's earlier cancellations of other items
        return [e for group, e in pending if group in (Group.STOCK, Group.PRICE) and _cancelled_items(e, cancelled)]
    if isinstance(payload, DeliveryProblem):  # "arriving today" is no news once the attempt failed
        return [e for group, e in pending if group is Group.SHIPPING and isinstance(e.payload, OutForDelivery)
                and e.payload.shipment_id == payload.shipment_id]
    if isinstance(payload, OrderDelivered):
        moot = (DeliveryProblemKind.ATTEMPTED, DeliveryProblemKind.DELAYED)
        return [e for group, e in pending if group is Group.PROBLEM and isinstance(e.payload, DeliveryProblem)
                and e.payload.shipment_id == payload.shipment_id and e.payload.kind in moot]
    return []


def compose(group: Group, events: list[OrderEvent]) -> Notification:
    """One e-mail for everything pending in a group; a delivery supersedes its own shipping news."""
    ordered = tuple(sorted(events, key=lambda e: e.occurred_at))
    if group is Group.STOCK:
        return Notification(Template.OUT_OF_STOCK, ordered)
    if group is Group.PRICE:
        return Notification(Template.PRICE_ERROR, ordered)
    if group is Group.PROBLEM:
        return Notification(Template.DELIVERY_PROBLEM, ordered)
    kinds = {e.event_type for e in ordered}
    if group is Group.CANCEL:
        cancelled = EventType.ORDER_CANCELLED in kinds
        return Notification(Template.ORDER_CANCELLED if cancelled else Template.REFUND_ISSUED, ordered)
    if EventType.ORDER_DELIVERED in kinds:
        return Notification(Template.DELIVERED, ordered)
    if EventType.OUT_FOR_DELIVERY in kinds:
        return Notification(Template.OUT_FOR_DELIVERY, ordered)
    return Notification(Template.SHIPPED, ordered)


def throttled_until(recent_sends: list[datetime], now: datetime, per_hour: int) -> datetime | None:
    """When the next informational e-mail may go, if ``per_hour`` went out in the last hour."""
    window_start = now - timedelta(hours=1)
    in_window = sorted(t for t in recent_sends if t > window_start)
    if per_hour <= 0 or len(in_window) < per_hour:
        return None
    return in_window[-per_hour] + timedelta(hours=1)


def quiet_until(now: datetime, time_zone: str, quiet_hours: tuple[int, int] | None) -> datetime | None:
    """The end of the customer's quiet hours if ``now`` falls inside them (local time), else None."""
    if quiet_hours is None:
        return None
    start, end = quiet_hours
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = now.astimezone(zone)
    hour = local.hour
    inside = start <= hour < end if start < end else (hour >= start or hour < end)
    if not inside:
        return None
    end_local = local.replace(hour=end, minute=0, second=0, microsecond=0)
    if end_local <= local:
        end_local += timedelta(days=1)
    return end_local.astimezone(now.tzinfo)
