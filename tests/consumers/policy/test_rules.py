"""The policy rules as pure functions: every decide() verdict, compose()'s template, throttling, quiet hours."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from consumers.notification import Notification, Template
from consumers.policy.rules import (
    Decision,
    Group,
    Hold,
    SendNow,
    Suppress,
    SuppressReason,
    compose,
    decide,
    facts_of,
    quiet_until,
    throttled_until,
)
from schemas.events import OrderEvent
from tests.factories import (
    delivered_event,
    money,
    out_of_stock_event,
    out_of_stock_item,
    parcel_item,
    placed_event,
    price_error_event,
    shipped_event,
)

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
MAX_AGE = timedelta(hours=72)
RECENT = NOW - timedelta(minutes=5)
SEND_NOW = "send now"  # stands for SendNow(Notification.for_event(event)), which needs the event itself

Build = Callable[[], OrderEvent]


def _placed() -> OrderEvent:
    return placed_event(occurred_at=RECENT)


def _shipped(shipment_id: str = "SHIP-1") -> Build:
    return lambda: shipped_event(shipment_id=shipment_id, occurred_at=RECENT)


def _delivered(shipment_id: str = "SHIP-1") -> Build:
    return lambda: delivered_event(shipment_id=shipment_id, occurred_at=RECENT)


def _out_of_stock(sku: str = "SKU-1", restock: date | None = date(2030, 1, 15)) -> Build:
    return lambda: out_of_stock_event(items=(out_of_stock_item(sku=sku, restock_estimate=restock),),
                                      occurred_at=RECENT)


def _price_error(sku: str = "SKU-1", shown: int = 129, correct: int = 1299) -> Build:
    return lambda: price_error_event(item=parcel_item(sku=sku), shown_price=money(shown),
                                     correct_price=money(correct), occurred_at=RECENT)


# (event, events the customer was already told about, opted out, expected decision)
DECIDE_CASES: list[tuple[str, Build, tuple[Build, ...], bool, Decision | str]] = [
    ("placed first time", _placed, (), False, SEND_NOW),
    ("placed again", _placed, (_placed,), False, Suppress(SuppressReason.ALREADY_CONFIRMED)),
    ("placed after shipped", _placed, (_shipped(),), False, Suppress(SuppressReason.STALE)),
    ("placed after delivered", _placed, (_delivered(),), False, Suppress(SuppressReason.STALE)),
    ("shipped new parcel", _shipped(), (_placed,), False, Hold(Group.SHIPPING)),
    ("shipped second parcel", _shipped("SHIP-2"), (_placed, _shipped("SHIP-1")), False, Hold(Group.SHIPPING)),
    ("shipped same parcel again", _shipped(), (_placed, _shipped()), False,
     Suppress(SuppressReason.DUPLICATE_NEWS)),
    ("shipped after its delivery", _shipped(), (_placed, _delivered()), False, Suppress(SuppressReason.STALE)),
    ("shipped after another parcel's delivery", _shipped("SHIP-2"), (_delivered("SHIP-1"),), False,
     Hold(Group.SHIPPING)),
    ("delivered", _delivered(), (_placed, _shipped()), False, Hold(Group.SHIPPING)),
    ("delivered again", _delivered(), (_delivered(),), False, Suppress(SuppressReason.DUPLICATE_NEWS)),
    ("out of stock new sku", _out_of_stock(), (_placed,), False, Hold(Group.STOCK)),
    ("out of stock another sku", _out_of_stock("SKU-2"), (_out_of_stock("SKU-1"),), False, Hold(Group.STOCK)),
    ("out of stock same sku and restock", _out_of_stock(), (_out_of_stock(),), False,
     Suppress(SuppressReason.DUPLICATE_NEWS)),
    ("out of stock same sku new restock date", _out_of_stock(restock=date(2030, 2, 1)), (_out_of_stock(),), False,
     Hold(Group.STOCK)),
    ("out of stock same sku, restock now unknown", _out_of_stock(restock=None), (_out_of_stock(),), False,
     Hold(Group.STOCK)),
    ("price error", _price_error(), (_placed,), False, Hold(Group.PRICE)),
    ("price error again", _price_error(), (_price_error(),), False, Suppress(SuppressReason.DUPLICATE_NEWS)),
    ("price error new correct price", _price_error(correct=1399), (_price_error(),), False, Hold(Group.PRICE)),
    ("opted out: shipped", _shipped(), (_placed,), True, Suppress(SuppressReason.OPTED_OUT)),
    ("opted out: delivered", _delivered(), (_placed, _shipped()), True, Suppress(SuppressReason.OPTED_OUT)),
    ("opted out: placed is still sent", _placed, (), True, SEND_NOW),
    ("opted out: out of stock is still held", _out_of_stock(), (_placed,), True, Hold(Group.STOCK)),
    ("opted out: price error is still held", _price_error(), (_placed,), True, Hold(Group.PRICE)),
    ("opted out: duplicate news stays duplicate", _shipped(), (_shipped(),), True,
     Suppress(SuppressReason.DUPLICATE_NEWS)),
]


@pytest.mark.parametrize(("event", "earlier", "opted_out", "expected"),
                         [pytest.param(*case[1:], id=case[0]) for case in DECIDE_CASES])
def test_decide(event: Build, earlier: tuple[Build, ...], opted_out: bool, expected: Decision | str) -> None:
    new = event()
    known = frozenset().union(*(facts_of(build()) for build in earlier))
    decision = decide(new, known, opted_out, NOW, MAX_AGE)
    if expected == SEND_NOW:
        assert decision == SendNow(Notification(Template.ORDER_PLACED, (new,)))
    else:
        assert decision == expected


TOO_OLD_BUILDERS: list[tuple[str, Callable[..., OrderEvent]]] = [
    ("placed", placed_event),
    ("out of stock", out_of_stock_event),
    ("price error", price_error_event),
    ("shipped", shipped_event),
    ("delivered", delivered_event),
]


@pytest.mark.parametrize("opted_out", [False, True], ids=["opted in", "opted out"])
@pytest.mark.parametrize("build", [pytest.param(b, id=name) for name, b in TOO_OLD_BUILDERS])
def test_decide_suppresses_every_type_beyond_the_age_limit(build: Callable[..., OrderEvent], opted_out: bool) -> None:
    event = build(occurred_at=NOW - timedelta(hours=73))
    assert decide(event, frozenset(), opted_out, NOW, MAX_AGE) == Suppress(SuppressReason.TOO_OLD)


@pytest.mark.parametrize("build", [pytest.param(b, id=name) for name, b in TOO_OLD_BUILDERS])
def test_decide_treats_exactly_max_age_as_still_news(build: Callable[..., OrderEvent]) -> None:
    event = build(occurred_at=NOW - MAX_AGE)
    assert not isinstance(decide(event, frozenset(), False, NOW, MAX_AGE), Suppress)


# -- compose -----------------------------------------------------------------------------------


def test_compose_shipping_with_only_shipped_news_uses_the_shipped_template_oldest_first() -> None:
    later = shipped_event(shipment_id="SHIP-2", occurred_at=NOW - timedelta(minutes=1))
    earlier = shipped_event(shipment_id="SHIP-1", occurred_at=NOW - timedelta(minutes=3))
    notification = compose(Group.SHIPPING, [later, earlier])
    assert notification.template is Template.SHIPPED
    assert notification.events == (earlier, later)


def test_compose_shipping_with_a_delivery_uses_the_delivered_template_oldest_first() -> None:
    delivered = delivered_event(occurred_at=NOW - timedelta(minutes=1))
    shipped = shipped_event(occurred_at=NOW - timedelta(minutes=3))
    notification = compose(Group.SHIPPING, [delivered, shipped])
    assert notification.template is Template.DELIVERED
    assert notification.events == (shipped, delivered)


@pytest.mark.parametrize(("group", "build", "template"), [
    (Group.STOCK, out_of_stock_event, Template.OUT_OF_STOCK),
    (Group.PRICE, price_error_event, Template.PRICE_ERROR),
])
def test_compose_merges_stock_and_price_news_into_their_own_template(
    group: Group, build: Callable[..., OrderEvent], template: Template
) -> None:
    second = build(occurred_at=NOW - timedelta(minutes=1))
    first = build(occurred_at=NOW - timedelta(minutes=2))
    notification = compose(group, [second, first])
    assert notification.template is template
    assert notification.events == (first, second)


# -- throttled_until ---------------------------------------------------------------------------


def _ago(*minutes: int) -> list[datetime]:
    return [NOW - timedelta(minutes=m) for m in minutes]


@pytest.mark.parametrize(("sends", "per_hour", "expected"), [
    pytest.param([], 3, None, id="nothing sent"),
    pytest.param(_ago(50, 10), 3, None, id="under the limit"),
    pytest.param(_ago(50, 30, 10), 3, NOW + timedelta(minutes=10), id="at the limit: oldest in window + 1 h"),
    pytest.param(_ago(10, 50, 30), 3, NOW + timedelta(minutes=10), id="at the limit, unsorted input"),
    pytest.param(_ago(55, 50, 30, 10), 3, NOW + timedelta(minutes=10), id="over the limit: the per_hour-th newest"),
    pytest.param(_ago(120, 70, 60, 30, 10), 3, None, id="sends an hour or more ago are ignored"),
    pytest.param(_ago(59, 30, 10), 3, NOW + timedelta(minutes=1), id="just inside the hour counts"),
    pytest.param(_ago(30), 1, NOW + timedelta(minutes=30), id="one per hour"),
    pytest.param(_ago(50, 30, 10), 0, None, id="limit 0 means no limit"),
])
def test_throttled_until(sends: list[datetime], per_hour: int, expected: datetime | None) -> None:
    assert throttled_until(sends, NOW, per_hour) == expected


# -- quiet_until -------------------------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")


def _berlin(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


@pytest.mark.parametrize(("now", "zone", "hours", "expected"), [
    pytest.param(_berlin(2025, 3, 10, 23, 30), "Europe/Berlin", (22, 8), _berlin(2025, 3, 11, 8),
                 id="22-08 at 23:30: 08:00 next day"),
    pytest.param(_berlin(2025, 3, 10, 22), "Europe/Berlin", (22, 8), _berlin(2025, 3, 11, 8),
                 id="22-08 at 22:00 sharp: quiet"),
    pytest.param(_berlin(2025, 3, 11, 3), "Europe/Berlin", (22, 8), _berlin(2025, 3, 11, 8),
                 id="22-08 at 03:00: 08:00 same day"),
    pytest.param(_berlin(2025, 3, 10, 12), "Europe/Berlin", (22, 8), None, id="22-08 at noon: not quiet"),
    pytest.param(_berlin(2025, 3, 10, 8), "Europe/Berlin", (22, 8), None, id="22-08 at 08:00 sharp: over"),
    pytest.param(_berlin(2025, 3, 29, 23, 30), "Europe/Berlin", (22, 8), _berlin(2025, 3, 30, 8),
                 id="22-08 over the spring DST change: 08:00 summer time"),
    pytest.param(_berlin(2025, 3, 10, 2), "Europe/Berlin", (1, 5), _berlin(2025, 3, 10, 5), id="01-05 at 02:00"),
    pytest.param(_berlin(2025, 3, 10, 0, 30), "Europe/Berlin", (1, 5), None, id="01-05 at 00:30: not yet"),
    pytest.param(_berlin(2025, 3, 10, 5), "Europe/Berlin", (1, 5), None, id="01-05 at 05:00 sharp: over"),
    pytest.param(datetime(2025, 3, 10, 23, 30, tzinfo=UTC), "Mars/Olympus_Mons", (22, 8),
                 datetime(2025, 3, 11, 8, tzinfo=UTC), id="unknown zone: UTC"),
    pytest.param(datetime(2025, 3, 10, 23, 30, tzinfo=UTC), "", (22, 8), datetime(2025, 3, 11, 8, tzinfo=UTC),
                 id="empty zone: UTC"),
    pytest.param(datetime(2025, 3, 10, 21, 30, tzinfo=UTC), "Mars/Olympus_Mons", (22, 8), None,
                 id="unknown zone, 21:30 UTC: not quiet"),
    pytest.param(_berlin(2025, 3, 10, 23, 30), "Europe/Berlin", None, None, id="quiet hours off"),
])
def test_quiet_until(now: datetime, zone: str, hours: tuple[int, int] | None, expected: datetime | None) -> None:
    utc_now = now.astimezone(UTC)  # the consumer's clock is UTC; the customer's zone comes from the event
    result = quiet_until(utc_now, zone, hours)
    assert result == expected
    if result is not None:
        assert result.tzinfo is UTC  # returned in the caller's zone
