"""The rules of "few and meaningful", as pure functions of an event and what is already known.

No I/O here: the decider (:mod:`consumers.decide.decider`) and the closing of due windows
(:mod:`consumers.policy.windows`) read the state, ask these functions, and write the state back.

- order placed: sent at once, never merged, never throttled.
- item out of stock / price error: sent when the order's window closes, merged with the same
  kind of news; never throttled or opted out of (the customer must act).
- shipped / delivered: sent when the window closes, outside quiet hours and within the hourly
  limit, merged with each other; customers may opt out of them.
The README's "Notification rules" table says the same for shop owners.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from consumers.notification import Notification, Template
from schemas.events import (
    EventType,
    ItemOutOfStock,
    OrderDelivered,
    OrderEvent,
    OrderShipped,
    PriceError,
)


class Group(enum.StrEnum):
    """Events of one order in the same group and window become one e-mail."""

    STOCK = "stock"
    PRICE = "price"
    SHIPPING = "shipping"


class SuppressReason(enum.StrEnum):
    DUPLICATE_DELIVERY = "duplicate_delivery"  # the same event_id again (redelivery, platform retry)
    ALREADY_CONFIRMED = "already_confirmed"  # a second ORDER_PLACED for a confirmed order
    DUPLICATE_NEWS = "duplicate_news"  # same parcel / item / price news under a new event id
    STALE = "stale"  # older than what the customer already knows (shipped after delivered)
    TOO_OLD = "too_old"  # beyond the staleness guard (backlog after an outage or a replay)
    OPTED_OUT = "opted_out"  # informational update for a customer who opted out


INFORMATIONAL = frozenset({EventType.ORDER_SHIPPED, EventType.ORDER_DELIVERED})

GROUP_OF: dict[EventType, Group] = {
    EventType.ITEM_OUT_OF_STOCK: Group.STOCK,
    EventType.PRICE_ERROR: Group.PRICE,
    EventType.ORDER_SHIPPED: Group.SHIPPING,
    EventType.ORDER_DELIVERED: Group.SHIPPING,
}


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
    return frozenset({"placed"})


def decide(
    event: OrderEvent, known: frozenset[str], opted_out: bool, now: datetime, max_age: timedelta
) -> Decision:
    """What to do with a new (never seen ``event_id``) event, given the order's known facts."""
    if now - event.occurred_at > max_age:
        return Suppress(SuppressReason.TOO_OLD)
    facts = facts_of(event)
    if event.event_type is EventType.ORDER_PLACED:
        if "placed" in known:
            return Suppress(SuppressReason.ALREADY_CONFIRMED)
        if any(fact.startswith(("shipped:", "delivered:")) for fact in known):
            return Suppress(SuppressReason.STALE)
        return SendNow(Notification.for_event(event))
    if isinstance(event.payload, OrderShipped) and f"delivered:{event.payload.shipment_id}" in known:
        return Suppress(SuppressReason.STALE)
    if facts <= known:
        return Suppress(SuppressReason.DUPLICATE_NEWS)
    if event.event_type in INFORMATIONAL and opted_out:
        return Suppress(SuppressReason.OPTED_OUT)
    return Hold(GROUP_OF[event.event_type])


def compose(group: Group, events: list[OrderEvent]) -> Notification:
    """One e-mail for everything pending in a group; a delivery supersedes its own shipping news."""
    ordered = tuple(sorted(events, key=lambda e: e.occurred_at))
    if group is Group.STOCK:
        return Notification(Template.OUT_OF_STOCK, ordered)
    if group is Group.PRICE:
        return Notification(Template.PRICE_ERROR, ordered)
    delivered = any(e.event_type is EventType.ORDER_DELIVERED for e in ordered)
    return Notification(Template.DELIVERED if delivered else Template.SHIPPED, ordered)


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
