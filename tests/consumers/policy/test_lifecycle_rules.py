"""The whole order lifecycle as pure rules: what a cancellation, a refund and the last mile supersede.

One test per line of README's "What supersedes what" table, orderings included. The decider and the
windows apply these verdicts; tests/consumers/test_lifecycle_stages.py plays them through both stages.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consumers.notification import Notification, Template
from consumers.policy.rules import (
    Group,
    Hold,
    SendNow,
    Suppress,
    SuppressReason,
    compose,
    decide,
    facts_of,
    refund_joins,
    superseded_by,
)
from schemas.events import DeliveryProblemKind, OrderEvent
from tests.factories import (
    cancelled_event,
    delivered_event,
    delivery_problem_event,
    out_for_delivery_event,
    out_of_stock_event,
    out_of_stock_item,
    parcel_item,
    placed_event,
    price_error_event,
    refund_event,
    shipped_event,
)

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
MAX_AGE = timedelta(hours=72)
RECENT = NOW - timedelta(minutes=5)


def _decide(event: OrderEvent, *told: OrderEvent, opted_out: bool = False, joins_cancellation: bool = False):  # type: ignore[no-untyped-def]
    known = frozenset().union(*(facts_of(e) for e in told))
    return decide(event, known, opted_out, NOW, MAX_AGE, joins_cancellation)


def _at(factory, minutes: float = 0, **fields):  # type: ignore[no-untyped-def]
    return factory(occurred_at=RECENT + timedelta(minutes=minutes), **fields)


# -- cancellation of the whole order

def test_a_whole_order_cancellation_waits_in_its_window_for_a_refund() -> None:
    assert _decide(_at(cancelled_event), _at(placed_event)) == Hold(Group.CANCEL)


def test_a_whole_order_cancellation_drops_every_pending_window_of_the_order() -> None:
    cancel = _at(cancelled_event, 5)
    pending = [
        (Group.SHIPPING, _at(shipped_event)),
        (Group.SHIPPING, _at(out_for_delivery_event, 1)),
        (Group.SHIPPING, _at(delivered_event, 2)),
        (Group.STOCK, _at(out_of_stock_event)),
        (Group.PRICE, _at(price_error_event)),
        (Group.PROBLEM, _at(delivery_problem_event)),
    ]
    refund = (Group.CANCEL, _at(refund_event))
    assert superseded_by(cancel, [*pending, refund]) == [e for _, e in pending]


@pytest.mark.parametrize("factory", [shipped_event, out_for_delivery_event, delivered_event, out_of_stock_event,
                                     price_error_event, delivery_problem_event],
                         ids=lambda f: f.__name__)
def test_news_after_a_whole_order_cancellation_is_superseded(factory) -> None:  # type: ignore[no-untyped-def]
    told = [_at(placed_event), _at(cancelled_event)]
    assert _decide(_at(factory, 10), *told) == Suppress(SuppressReason.SUPERSEDED)


def test_the_same_cancellation_reported_twice_is_duplicate_news_not_superseded() -> None:
    assert _decide(_at(cancelled_event, 3), _at(cancelled_event)) == Suppress(SuppressReason.DUPLICATE_NEWS)


# -- cancellation of some items

def test_some_items_cancelled_drop_pending_stock_and_price_news_of_those_items_only() -> None:
    cancel = _at(cancelled_event, 5, items=(parcel_item("MUG"),), refund=None)
    mug_stock = _at(out_of_stock_event, items=(out_of_stock_item("MUG"),))
    tea_stock = _at(out_of_stock_event, items=(out_of_stock_item("TEA"),))
    both_stock = _at(out_of_stock_event, items=(out_of_stock_item("MUG"), out_of_stock_item("TEA")))
    mug_price = _at(price_error_event, item=parcel_item("MUG"))
    tea_price = _at(price_error_event, item=parcel_item("TEA"))
    shipped = _at(shipped_event)
    pending = [(Group.STOCK, mug_stock), (Group.STOCK, tea_stock), (Group.STOCK, both_stock),
               (Group.PRICE, mug_price), (Group.PRICE, tea_price), (Group.SHIPPING, shipped)]
    assert superseded_by(cancel, pending) == [mug_stock, mug_price]


def test_after_some_items_are_cancelled_news_of_those_items_is_superseded_and_of_others_is_not() -> None:
    told = [_at(placed_event), _at(cancelled_event, items=(parcel_item("MUG"),))]
    mug = _at(out_of_stock_event, 10, items=(out_of_stock_item("MUG"),))
    tea = _at(out_of_stock_event, 10, items=(out_of_stock_item("TEA"),))
    assert _decide(mug, *told) == Suppress(SuppressReason.SUPERSEDED)
    assert _decide(tea, *told) == Hold(Group.STOCK)
    assert _decide(_at(shipped_event, 10), *told) == Hold(Group.SHIPPING)  # the rest of the order goes on


def test_a_refund_joins_an_open_cancellation_window_and_the_email_is_the_cancellation() -> None:
    cancel = _at(cancelled_event, items=(parcel_item("MUG"),))
    refund = _at(refund_event, 1, items=(parcel_item("MUG"),))
    assert _decide(refund, cancel, joins_cancellation=True) == Hold(Group.CANCEL)
    assert compose(Group.CANCEL, [refund, cancel]) == Notification(Template.ORDER_CANCELLED, (cancel, refund))


# -- refunds

def test_a_refund_with_no_cancellation_waiting_is_sent_at_once() -> None:
    refund = _at(refund_event)
    assert _decide(refund, _at(placed_event)) == SendNow(Notification(Template.REFUND_ISSUED, (refund,)))


def test_a_refund_before_the_cancellation_is_sent_at_once_and_the_cancellation_still_follows() -> None:
    refund = _at(refund_event)
    assert isinstance(_decide(refund, _at(placed_event)), SendNow)
    assert _decide(_at(cancelled_event, 1), _at(placed_event), refund) == Hold(Group.CANCEL)


def test_a_refund_after_the_cancellation_was_told_is_sent_not_superseded() -> None:
    told = [_at(placed_event), _at(cancelled_event)]
    assert isinstance(_decide(_at(refund_event, 120), *told), SendNow)


def test_a_refund_is_never_opted_out_of_and_the_same_refund_twice_is_one() -> None:
    refund = _at(refund_event)
    assert isinstance(_decide(refund, opted_out=True), SendNow)
    again = _at(refund_event, 1)  # same refund_id, new event id
    assert _decide(again, refund) == Suppress(SuppressReason.DUPLICATE_NEWS)


# -- the last mile

def test_out_for_delivery_is_shipping_news_the_customer_may_switch_off() -> None:
    assert _decide(_at(out_for_delivery_event), _at(shipped_event)) == Hold(Group.SHIPPING)
    assert _decide(_at(out_for_delivery_event), opted_out=True) == Suppress(SuppressReason.OPTED_OUT)


def test_delivered_supersedes_pending_shipped_and_out_for_delivery_of_the_same_parcel() -> None:
    shipped, ofd, delivered = _at(shipped_event), _at(out_for_delivery_event, 1), _at(delivered_event, 2)
    assert compose(Group.SHIPPING, [shipped, ofd, delivered]).template is Template.DELIVERED
    assert compose(Group.SHIPPING, [shipped, ofd]).template is Template.OUT_FOR_DELIVERY


@pytest.mark.parametrize("factory", [shipped_event, out_for_delivery_event, delivery_problem_event],
                         ids=lambda f: f.__name__)
def test_news_of_a_parcel_older_than_its_delivery_is_stale(factory) -> None:  # type: ignore[no-untyped-def]
    assert _decide(_at(factory, 5), _at(delivered_event)) == Suppress(SuppressReason.STALE)


def test_shipped_after_out_for_delivery_of_the_same_parcel_is_stale() -> None:
    assert _decide(_at(shipped_event, 5), _at(out_for_delivery_event)) == Suppress(SuppressReason.STALE)


def test_a_delivery_problem_has_its_own_window_never_opted_out_of() -> None:
    problem = _at(delivery_problem_event, 5)
    assert _decide(problem, _at(out_for_delivery_event)) == Hold(Group.PROBLEM)
    assert _decide(problem, _at(out_for_delivery_event), opted_out=True) == Hold(Group.PROBLEM)
    assert compose(Group.PROBLEM, [problem]).template is Template.DELIVERY_PROBLEM


def test_delivered_after_a_delivery_problem_is_sent() -> None:
    problem = _at(delivery_problem_event)
    assert _decide(_at(delivered_event, 60), problem) == Hold(Group.SHIPPING)


@pytest.mark.parametrize("kind, dropped", [(DeliveryProblemKind.ATTEMPTED, True), (DeliveryProblemKind.DELAYED, True),
                                           (DeliveryProblemKind.LOST, False)])
def test_a_delivery_drops_a_pending_attempted_or_delayed_delivery_of_its_parcel(
        kind: DeliveryProblemKind, dropped: bool) -> None:
    problem = _at(delivery_problem_event, kind=kind)
    other_parcel = _at(delivery_problem_event, shipment_id="SHIP-2")
    delivered = _at(delivered_event, 5)
    expected = [problem] if dropped else []
    assert superseded_by(delivered, [(Group.PROBLEM, problem), (Group.PROBLEM, other_parcel)]) == expected


def test_a_second_problem_of_another_kind_is_news_and_the_same_one_again_is_not() -> None:
    attempted = _at(delivery_problem_event)
    returned = _at(delivery_problem_event, 60, kind=DeliveryProblemKind.RETURNED_TO_SENDER)
    assert _decide(returned, attempted) == Hold(Group.PROBLEM)
    assert _decide(_at(delivery_problem_event, 1), attempted) == Suppress(SuppressReason.DUPLICATE_NEWS)


def test_events_that_supersede_nothing_drop_nothing() -> None:
    pending = [(Group.SHIPPING, _at(shipped_event)), (Group.STOCK, _at(out_of_stock_event))]
    for event in (_at(shipped_event, 1), _at(refund_event), _at(out_for_delivery_event)):
        assert superseded_by(event, pending) == []


def test_a_refund_joins_a_pending_cancellation_of_the_whole_order_or_of_the_same_items_only() -> None:
    whole = _at(cancelled_event)
    mug = _at(cancelled_event, items=(parcel_item("MUG"),))
    refund_mug = _at(refund_event, 1, items=(parcel_item("MUG"),))
    refund_tea = _at(refund_event, 1, items=(parcel_item("TEA"),))
    shipping_only = _at(refund_event, 1, items=(), shipping_refunded=True)
    assert refund_joins(refund_tea, [whole]) and refund_joins(shipping_only, [whole])
    assert refund_joins(refund_mug, [mug])
    assert not refund_joins(refund_tea, [mug]) and not refund_joins(shipping_only, [mug])
    assert not refund_joins(refund_mug, [])


def test_a_delivery_problem_drops_the_pending_out_for_delivery_news_of_its_parcel_only() -> None:
    ofd = _at(out_for_delivery_event)
    other = _at(out_for_delivery_event, shipment_id="SHIP-2")
    shipped = _at(shipped_event)
    problem = _at(delivery_problem_event, 5)
    pending = [(Group.SHIPPING, shipped), (Group.SHIPPING, ofd), (Group.SHIPPING, other)]
    assert superseded_by(problem, pending) == [ofd]


def test_items_cancelled_one_by_one_drop_out_of_stock_news_of_both() -> None:
    both = _at(out_of_stock_event, items=(out_of_stock_item("MUG"), out_of_stock_item("TEA")))
    mug = _at(cancelled_event, 1, items=(parcel_item("MUG"),))
    tea = _at(cancelled_event, 2, items=(parcel_item("TEA"),))
    assert superseded_by(mug, [(Group.STOCK, both)], facts_of(both)) == []  # TEA still needs an answer
    assert superseded_by(tea, [(Group.STOCK, both)], facts_of(both) | facts_of(mug)) == [both]


def test_a_second_delivery_attempt_on_another_day_is_news_and_a_re_report_the_same_day_is_not() -> None:
    day1 = RECENT - timedelta(days=1)
    ofd_1 = out_for_delivery_event(occurred_at=day1, window_start=day1, window_end=day1 + timedelta(hours=3))
    missed_1 = delivery_problem_event(occurred_at=day1 + timedelta(hours=4))
    ofd_2 = _at(out_for_delivery_event, window_start=RECENT, window_end=RECENT + timedelta(hours=3))
    missed_2 = _at(delivery_problem_event, 5)
    assert _decide(ofd_2, ofd_1, missed_1) == Hold(Group.SHIPPING)
    assert _decide(missed_2, ofd_1, missed_1, ofd_2) == Hold(Group.PROBLEM)
    assert _decide(_at(delivery_problem_event, 6), missed_2) == Suppress(SuppressReason.DUPLICATE_NEWS)
    assert _decide(_at(shipped_event, 7), ofd_2) == Suppress(SuppressReason.STALE)
