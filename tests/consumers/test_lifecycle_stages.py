"""The whole order lifecycle through both stages (decide, then deliver) over a real SQLite store and a fake clock.

Each test plays one ordering of README's "What supersedes what" and checks what the customer receives
and what the communications log says was not sent, and why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.outcomes import Held, Queued, Suppressed
from consumers.state.store import StateStore
from schemas.events import DeliveryProblemKind
from tests import factories
from tests.consumers.test_stages import WINDOW_S, Harness


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(f"sqlite:///{tmp_path / 'state.db'}")


def _templates(h: Harness) -> list[str]:
    return [r["template"] for r in h.log.records if r["outcome"] == "SENT"]


def _not_sent(h: Harness) -> list[tuple[str, int]]:
    return [(r["reason"], len(r["event_ids"])) for r in h.log.records if r["outcome"] == "NOT_SENT"]


def test_a_cancellation_inside_the_window_drops_the_pending_news_and_is_one_email_with_its_refund(
        store: StateStore) -> None:
    h = Harness(store)
    h.consume(h.event(factories.placed_event, order_id="L-1"))
    h.consume(h.event(factories.shipped_event, order_id="L-1"))
    h.consume(h.event(factories.out_of_stock_event, order_id="L-1"))
    h.clock.now += 10
    assert h.consume(h.event(factories.cancelled_event, order_id="L-1")) == Held("cancel")
    assert h.decider.pending_count() == 1  # only the cancellation's window is left
    assert h.decider.not_sent_by_reason["superseded"] == 2  # counted, as the operators' metrics are
    h.clock.now += 10
    assert h.consume(h.event(factories.refund_event, order_id="L-1", amount=factories.money(3097))) == Held(
        "cancel", coalesced=True)
    h.at(10 * WINDOW_S)
    assert sorted(_templates(h)) == ["order_cancelled", "order_placed"]
    assert _not_sent(h) == [("superseded", 1), ("superseded", 1)]
    (record,) = [r for r in h.log.records if r.get("template") == "order_cancelled"]
    assert len(record["event_ids"]) == 2  # the cancellation and its refund: one e-mail
    (cancelled,) = [m for m in h.sender.sent if b"cancelled" in m.data]
    assert b"30.97" in cancelled.data


def test_news_after_the_cancellation_is_not_sent_and_the_history_says_why(store: StateStore) -> None:
    h = Harness(store)
    h.consume(h.event(factories.placed_event, order_id="L-2"))
    h.consume(h.event(factories.cancelled_event, order_id="L-2"))
    h.at(WINDOW_S + 1)  # the cancellation's window closes: it is told
    assert h.consume(h.event(factories.shipped_event, order_id="L-2")) == Suppressed("superseded")
    assert h.consume(h.event(factories.delivery_problem_event, order_id="L-2")) == Suppressed("superseded")
    assert h.consume(h.event(factories.refund_event, order_id="L-2")) == Queued("refund_issued")  # money: told
    h.at(10 * WINDOW_S)
    assert sorted(_templates(h)[:2]) == ["order_cancelled", "order_placed"] and _templates(h)[2:] == ["refund_issued"]
    assert _not_sent(h) == [("superseded", 1), ("superseded", 1)]


def test_a_refund_before_the_cancellation_is_sent_at_once_then_the_cancellation(store: StateStore) -> None:
    h = Harness(store)
    assert h.consume(h.event(factories.refund_event, order_id="L-3")) == Queued("refund_issued")
    h.deliver()
    h.consume(h.event(factories.cancelled_event, order_id="L-3"))
    h.at(WINDOW_S + 1)
    assert _templates(h) == ["refund_issued", "order_cancelled"]


def test_some_items_cancelled_drop_their_out_of_stock_news_and_the_rest_goes_on(store: StateStore) -> None:
    h = Harness(store)
    mug, tea = factories.out_of_stock_item("MUG", "Mug"), factories.out_of_stock_item("TEA", "Tea")
    h.consume(h.event(factories.out_of_stock_event, order_id="L-4", items=(mug,)))
    h.consume(h.event(factories.out_of_stock_event, order_id="L-4", items=(tea,)))
    h.consume(h.event(factories.cancelled_event, order_id="L-4", items=(factories.parcel_item("MUG", "Mug"),)))
    h.consume(h.event(factories.shipped_event, order_id="L-4"))
    h.at(WINDOW_S + 1)
    assert sorted(_templates(h)) == ["order_cancelled", "out_of_stock", "shipped"]
    assert _not_sent(h) == [("superseded", 1)]
    stock_mail = next(m for m in h.sender.sent if b"out of stock" in m.data or "stock" in str(m.data))
    assert b"Tea" in stock_mail.data and b"Mug" not in stock_mail.data


def test_delivered_supersedes_pending_out_for_delivery_and_an_attempted_delivery_of_its_parcel(
        store: StateStore) -> None:
    h = Harness(store)
    h.consume(h.event(factories.out_for_delivery_event, order_id="L-5"))
    h.consume(h.event(factories.delivery_problem_event, order_id="L-5"))
    h.clock.now += 30
    h.consume(h.event(factories.delivered_event, order_id="L-5"))
    h.at(10 * WINDOW_S)
    assert _templates(h) == ["delivered"]
    assert _not_sent(h) == [("superseded", 1), ("superseded", 1)]  # "arriving today", then "we missed you"


def test_a_delivery_problem_is_sent_even_over_the_hourly_limit_and_delivered_after_it_too(
        store: StateStore) -> None:
    h = Harness(store, throttle_per_hour=1)
    h.consume(h.event(factories.out_for_delivery_event, order_id="L-6"))
    assert h.at(WINDOW_S + 1) == 1
    h.consume(h.event(factories.delivery_problem_event, order_id="L-6", kind=DeliveryProblemKind.DELAYED))
    assert h.at(2 * WINDOW_S + 2) == 1  # over the limit for shipping news, but the customer must know
    h.consume(h.event(factories.delivered_event, order_id="L-6"))
    assert h.at(3 * WINDOW_S + 3) == 0  # delivered is shipping news: held by the hourly limit
    assert h.at(WINDOW_S + 1 + 3600 + 1) == 1
    assert _templates(h) == ["out_for_delivery", "delivery_problem", "delivered"]


def test_a_cancellation_window_survives_a_restart_and_still_drops_later_news(store: StateStore) -> None:
    h = Harness(store)
    h.consume(h.event(factories.shipped_event, order_id="L-7"))
    h.consume(h.event(factories.cancelled_event, order_id="L-7"))
    h.restart()
    assert h.consume(h.event(factories.delivered_event, order_id="L-7")) == Suppressed("superseded")
    h.at(WINDOW_S + 1)
    h.restart()
    h.at(10 * WINDOW_S)
    assert _templates(h) == ["order_cancelled"]


def test_items_cancelled_in_two_events_drop_the_out_of_stock_news_that_named_both(store: StateStore) -> None:
    h = Harness(store)
    items = (factories.out_of_stock_item("MUG", "Mug"), factories.out_of_stock_item("TEA", "Tea"))
    h.consume(h.event(factories.out_of_stock_event, order_id="L-8", items=items))
    h.consume(h.event(factories.cancelled_event, order_id="L-8", items=(factories.parcel_item("MUG", "Mug"),)))
    h.consume(h.event(factories.cancelled_event, order_id="L-8", items=(factories.parcel_item("TEA", "Tea"),)))
    h.at(10 * WINDOW_S)
    assert _templates(h) == ["order_cancelled"]
    assert _not_sent(h) == [("superseded", 1)]
