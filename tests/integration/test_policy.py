"""Few and meaningful, over the real broker and SMTP server: the exact set of e-mails for noisy streams."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from devstack.smtp_capture import SmtpCapture
from ordernotify.config import Settings
from producers.event_producer import OrderEventProducer
from producers.simulator import simulate_orders
from schemas.codec import AvroCodec, EventCodec
from schemas.events import (
    CustomerPreferences,
    DeliveryProblem,
    EventType,
    ItemOutOfStock,
    OrderCancelled,
    OrderDelivered,
    OrderEvent,
    RefundIssued,
)
from schemas.registry import NOTIFICATION_SENT
from tests import factories
from tests.consumer_runner import ConsumerRunner
from tests.kafka_reading import read_topic

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).parent / "golden" / "policy_stream.txt"


def _produce_bytes(settings: Settings, events: list[OrderEvent]) -> None:
    """Produce as the platform would, including exact re-sends of the same bytes (retries)."""
    codec = EventCodec()
    producer = KafkaProducer(**settings.kafka_client_options(), acks="all", linger_ms=5)
    try:
        for future in [producer.send(settings.events_topic, key=e.order_id.encode(), value=codec.encode(e))
                       for e in events]:
            future.get(10)
    finally:
        producer.close()


def _opt_out(settings: Settings, customer_ids: set[str]) -> None:
    with OrderEventProducer(settings) as producer:
        for customer_id in sorted(customer_ids):
            producer.publish_preferences(CustomerPreferences(customer_id, False, datetime.now(UTC)))


def _log(settings: Settings, expected: int) -> list[dict[str, Any]]:
    codec = AvroCodec(NOTIFICATION_SENT)
    return [codec.decode(r.value) for r in read_topic(settings, settings.sent_topic, expected=expected)]


def _sent(settings: Settings, expected: int) -> list[tuple[str, str]]:
    return sorted((r["order_id"], r["template"]) for r in _log(settings, expected) if r["outcome"] == "SENT")


def test_redeliveries_and_semantic_duplicates_give_one_email_each(settings: Settings, smtp_server: SmtpCapture) -> None:
    placed = factories.placed_event(order_id="D-1")
    shipped = factories.shipped_event(order_id="D-1", shipment_id="P1")
    reported_again = dataclasses.replace(shipped, event_id=str(uuid.uuid4()))  # same parcel, new event id
    placed_again = dataclasses.replace(placed, event_id=str(uuid.uuid4()))  # platform re-emits the order
    _produce_bytes(settings, [placed, placed, shipped, placed_again, reported_again, shipped])
    with ConsumerRunner(settings) as runner:
        runner.wait_handled(6)
        runner.wait_idle()
        expected = {"duplicate_delivery": 2, "already_confirmed": 1, "duplicate_news": 1}
        not_sent = runner.not_sent_when(lambda counts: counts == expected)
    assert len(smtp_server.wait_for(2)) == 2
    assert _sent(settings, expected=4) == [("D-1", "order_placed"), ("D-1", "shipped")]
    assert not_sent == expected


def test_shipped_after_delivered_is_stale_and_sends_nothing(settings: Settings, smtp_server: SmtpCapture) -> None:
    delivered = factories.delivered_event(order_id="S-1", shipment_id="P1")
    _produce_bytes(settings, [delivered])
    with ConsumerRunner(settings) as runner:
        runner.wait_handled(1)
        smtp_server.wait_for(1)
        late = factories.shipped_event(order_id="S-1", shipment_id="P1",
                                       occurred_at=delivered.occurred_at - timedelta(hours=1))
        _produce_bytes(settings, [late])
        runner.wait_handled(2)
        runner.wait_idle()
    assert len(smtp_server.messages) == 1
    log = _log(settings, expected=2)
    assert [(r["outcome"], r["reason"]) for r in log] == [("SENT", None), ("NOT_SENT", "stale")]


def test_related_news_is_merged_and_confirmations_are_not_delayed(settings: Settings, smtp_server: SmtpCapture) -> None:
    settings = dataclasses.replace(settings, coalesce_window_s=6.0)
    events = [
        factories.placed_event(order_id="M-1"),
        factories.out_of_stock_event(order_id="M-1", items=(factories.out_of_stock_item(sku="A", name="Kettle"),)),
        factories.out_of_stock_event(order_id="M-1", items=(factories.out_of_stock_item(sku="B", name="Teapot"),)),
        factories.shipped_event(order_id="M-1", shipment_id="P1"),
        factories.shipped_event(order_id="M-1", shipment_id="P2"),
        factories.delivered_event(order_id="M-1", shipment_id="P1"),
    ]
    _produce_bytes(settings, events)
    with ConsumerRunner(settings) as runner:
        runner.wait_handled(len(events))
        (confirmation,) = smtp_server.wait_for(1, timeout_s=3)  # at once, while the windows are open
        assert "M-1" in confirmation.subject
        runner.wait_idle(timeout_s=20)
    messages = smtp_server.wait_for(3)
    assert len(messages) == 3
    assert _sent(settings, expected=3) == [("M-1", "delivered"), ("M-1", "order_placed"), ("M-1", "out_of_stock")]
    stock_mail = next(m for m in messages if "Kettle" in m.body("plain"))
    assert "Teapot" in stock_mail.body("plain")  # both items in one e-mail
    delivered_mail = next(m for m in messages if m is not stock_mail and m is not confirmation)
    assert "P2" in delivered_mail.body("plain") or "TRKP2" in delivered_mail.body("plain")  # parcel 2 still on its way


def test_opted_out_customers_get_no_updates_but_still_confirmations(
    settings: Settings, smtp_server: SmtpCapture
) -> None:
    customer = factories.make_customer(customer_id="C-OUT")
    _opt_out(settings, {"C-OUT"})
    with ConsumerRunner(settings) as runner:
        deadline = time.monotonic() + 15
        while runner.running.preferences.applied < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert runner.running.preferences.applied == 1
        _produce_bytes(settings, [factories.placed_event(order_id="O-1", customer=customer),
                                  factories.shipped_event(order_id="O-1", customer=customer),
                                  factories.out_of_stock_event(order_id="O-1", customer=customer)])
        runner.wait_handled(3)
        runner.wait_idle()
    assert _sent(settings, expected=3) == [("O-1", "order_placed"), ("O-1", "out_of_stock")]
    assert len(smtp_server.messages) == 2


def test_a_week_old_backlog_is_not_emailed_but_listed(settings: Settings, smtp_server: SmtpCapture) -> None:
    old = factories.placed_event(order_id="B-1", occurred_at=datetime.now(UTC) - timedelta(days=7))
    fresh = factories.placed_event(order_id="B-2")
    _produce_bytes(settings, [old, fresh])
    with ConsumerRunner(settings) as runner:
        runner.wait_handled(2)
    assert len(smtp_server.wait_for(1)) == 1
    log = {r["order_id"]: r for r in _log(settings, expected=2)}
    assert log["B-1"]["outcome"] == "NOT_SENT" and log["B-1"]["reason"] == "too_old"
    assert log["B-2"]["outcome"] == "SENT" and log["B-2"]["message_id"]


# -- the golden stream ------------------------------------------------------------------------------

def _noisy_stream(seed: int = 7, orders: int = 150) -> tuple[list[OrderEvent], set[str]]:
    """Simulated lifecycles with injected retries, re-reports, reorderings and opt-outs."""
    base = simulate_orders(orders, seed=seed)
    by_order: dict[str, list[OrderEvent]] = {}
    for event in base:
        by_order.setdefault(event.order_id, []).append(event)
    stream: list[OrderEvent] = []
    for n, event in enumerate(base):
        stream.append(event)
        if n % 10 == 0:
            stream.append(event)  # a platform retry: the same event again
        if event.event_type is EventType.ORDER_SHIPPED and n % 3 == 0:
            stream.append(dataclasses.replace(event, event_id=str(uuid.UUID(int=n + 1))))  # parcel re-reported
    for k, events in enumerate(by_order.values()):  # deliver-before-ship reordering for some orders
        types = [e.event_type for e in events]
        if k % 6 == 0 and EventType.ORDER_DELIVERED in types:
            shipped = events[types.index(EventType.ORDER_SHIPPED)]
            stream.remove(shipped)
            delivered_at = stream.index(events[types.index(EventType.ORDER_DELIVERED)])
            stream.insert(delivered_at + 1, shipped)
    customers = sorted({e.customer.customer_id for e in base})
    opted_out = set(customers[::7])
    return stream, opted_out


def _expected(stream: list[OrderEvent], opted_out: set[str]) -> list[tuple[str, str]]:
    """The rules, spelled out for a stream that fits in one window: one confirmation; a whole order's
    cancellation is the one other e-mail (with its refund); otherwise one e-mail per kind of news, out-of-stock
    news of items the customer cancelled dropped, a refund of the cancelled items merged into the cancellation
    and any other refund sent alone, a lost parcel told, an attempted or delayed delivery dropped once the
    parcel arrived, and one shipping e-mail unless the customer opted out."""
    by_order: dict[str, list[OrderEvent]] = {}
    for event in stream:
        by_order.setdefault(event.order_id, []).append(event)
    expected = []
    for order_id, events in by_order.items():
        types = {e.event_type for e in events}
        payloads = [e.payload for e in events]
        expected.append((order_id, "order_placed"))
        cancellations = [p for p in payloads if isinstance(p, OrderCancelled)]
        if any(c.whole_order for c in cancellations):
            expected.append((order_id, "order_cancelled"))
            continue
        cancelled_skus = {i.sku for c in cancellations for i in c.items}
        if any(isinstance(p, ItemOutOfStock) and {i.sku for i in p.items} - cancelled_skus for p in payloads):
            expected.append((order_id, "out_of_stock"))
        if EventType.PRICE_ERROR in types:
            expected.append((order_id, "price_error"))
        if cancellations:
            expected.append((order_id, "order_cancelled"))
        refunds = {p.refund_id: p for p in payloads if isinstance(p, RefundIssued)}
        expected += [(order_id, "refund_issued") for r in refunds.values()
                     if not r.items or {i.sku for i in r.items} - cancelled_skus]
        delivered = {p.shipment_id for p in payloads if isinstance(p, OrderDelivered)}
        if any(isinstance(p, DeliveryProblem) and p.shipment_id not in delivered for p in payloads):
            expected.append((order_id, "delivery_problem"))
        if events[0].customer.customer_id not in opted_out:
            if delivered:
                expected.append((order_id, "delivered"))
            elif EventType.OUT_FOR_DELIVERY in types:
                expected.append((order_id, "out_for_delivery"))
            elif EventType.ORDER_SHIPPED in types:
                expected.append((order_id, "shipped"))
    return sorted(expected)


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_golden_stream_with_a_restart_in_the_middle(
    store: str, settings: Settings, smtp_server: SmtpCapture, request: pytest.FixtureRequest
) -> None:
    state_url = request.getfixturevalue("postgres_url") if store == "postgresql" else settings.state_url
    # A window long enough to span the whole stream and the restart, an hourly limit out of the way
    # (the throttle has tests of its own, with a clock they control).
    settings = dataclasses.replace(settings, state_url=state_url, coalesce_window_s=25.0, throttle_per_hour=100)
    stream, opted_out = _noisy_stream()
    expected = _expected(stream, opted_out)
    golden = [tuple(line.split()) for line in GOLDEN.read_text().splitlines() if line.strip()]
    assert expected == golden, "the rules or the simulator changed: review, then rewrite the golden file"

    _opt_out(settings, opted_out)
    _produce_bytes(settings, stream)
    started = time.monotonic()
    with ConsumerRunner(settings) as first:
        first.wait_handled(len(stream) // 2, timeout_s=60)
    with ConsumerRunner(settings) as runner:  # restarted mid-stream and mid-window
        runner.wait_handled(len(stream) - first.running.loop.handled, timeout_s=60)
        assert time.monotonic() - started < 25, "the stream outlasted the window: the test would be meaningless"
        runner.wait_idle(timeout_s=60)
    sent = _sent(settings, expected=len(expected))
    assert sent == expected
    messages = smtp_server.wait_for(len(expected))
    assert len(messages) == len(expected)
    assert len({m.message["Message-ID"] for m in messages}) == len(messages)
    assert Counter(t for _, t in sent)["order_placed"] == 150
