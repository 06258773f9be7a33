"""The policy engine over a real SQLite store, with a fake clock and a recording SMTP sender.

Windows of an hour (throttle, quiet hours) cannot be waited out over the real
broker; here the clock is ours.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest

from consumers.composing import outbox_entry
from consumers.dead_letters import SourceRecord
from consumers.exceptions import SmtpPermanentError, StateStoreUnavailable
from consumers.health import ConsumerHealth
from consumers.message import OutgoingEmail, order_root_id
from consumers.notification import Notification
from consumers.outcomes import DeadLettered, Held, Sent, Suppressed
from consumers.policy.notifier import Notifier
from consumers.rendering import Renderer
from consumers.state.store import OutboxEntry, StateStore
from ordernotify.config import Settings
from schemas.codec import EventCodec
from schemas.events import OrderEvent
from tests import factories

WINDOW_S = 60.0
T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC).timestamp()  # in the past (validation), 13:00 in Berlin


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []
        self.fail_with: Exception | BaseException | None = None

    async def send(self, mail: OutgoingEmail, template: str = "unknown") -> None:
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            if isinstance(error, asyncio.CancelledError):
                self.sent.append(mail)  # the server took it, then the process died before hearing so
            raise error
        self.sent.append(mail)

    def subjects(self) -> list[str]:
        return [str(message_from_bytes(m.data)["Subject"]) for m in self.sent]


class RecordingLog:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def sent(self, **record: Any) -> None:
        self.records.append({"outcome": "SENT", **record})

    def not_sent(self, **record: Any) -> None:
        self.records.append({"outcome": "NOT_SENT", **record})


class RecordingDeadLetters:
    def __init__(self) -> None:
        self.records: list[tuple[SourceRecord, str]] = []

    def publish(self, record: SourceRecord, reason: str, detail: str) -> None:
        self.records.append((record, reason))


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(f"sqlite:///{tmp_path / 'state.db'}")


class CountingComposer:
    """Renders here, as a worker process would, and counts the e-mails it was asked for."""

    def __init__(self, settings: Settings) -> None:
        self.renderer, self.settings, self.composed = Renderer(settings), settings, 0

    async def compose(self, notification: Notification) -> OutboxEntry:
        self.composed += 1
        return outbox_entry(self.renderer, notification, self.settings)

    def close(self) -> None:
        pass


class Harness:
    def __init__(self, store: StateStore, composer: bool = False, **overrides: Any) -> None:
        self.settings = dataclasses.replace(Settings(), coalesce_window_s=WINDOW_S, **overrides)
        self.composer = CountingComposer(self.settings) if composer else None
        self.clock = Clock()
        self.sender = RecordingSender()
        self.log = RecordingLog()
        self.dead = RecordingDeadLetters()
        self.health = ConsumerHealth()
        self.store = store
        self.notifier = self._notifier()
        self._offset = 0

    def _notifier(self) -> Notifier:
        return Notifier(self.settings, self.store, Renderer(self.settings), self.sender,  # type: ignore[arg-type]
                        self.log, self.dead, clock=self.clock, composer=self.composer,  # type: ignore[arg-type]
                        health=self.health)

    def restart(self) -> None:
        self.notifier = self._notifier()

    def event(self, factory: Any, minutes: float = 0, **fields: Any) -> OrderEvent:
        occurred = datetime.fromtimestamp(self.clock.now + minutes * 60, UTC)
        return factory(occurred_at=occurred, **fields)  # type: ignore[no-any-return]

    def consume(self, event: OrderEvent) -> Any:
        self._offset += 1
        record = SourceRecord("orders.events", 0, self._offset, event.order_id.encode(), EventCodec().encode(event), ())
        return asyncio.run(self.notifier.on_event(event, record))

    def at(self, seconds_after_t0: float) -> int:
        self.clock.now = T0 + seconds_after_t0
        return asyncio.run(self.notifier.flush_due())


def test_placed_is_sent_at_once_and_a_redelivery_is_not(store: StateStore) -> None:
    h = Harness(store)
    placed = h.event(factories.placed_event, order_id="N-1")
    assert isinstance(h.consume(placed), Sent)
    assert h.consume(placed) == Suppressed("duplicate_delivery")
    assert len(h.sender.sent) == 1
    assert [r["outcome"] for r in h.log.records] == ["SENT"]  # a redelivery is not news: not logged


@pytest.mark.parametrize("composer", [False, True], ids=["in-thread", "composer"])
def test_an_email_decided_at_once_is_rendered_by_the_composer_when_there_is_one(store: StateStore,
                                                                                 composer: bool) -> None:
    h = Harness(store, composer=composer)
    placed = h.event(factories.placed_event, order_id="N-C")
    assert isinstance(h.consume(placed), Sent)
    assert isinstance(h.consume(placed), Suppressed)  # redelivery: decided without rendering
    assert [m.message_id for m in h.sender.sent] == [order_root_id("N-C", "shop.example")]
    assert h.composer is None or h.composer.composed == 1


def test_shipped_then_delivered_in_one_window_is_one_delivered_email(store: StateStore) -> None:
    h = Harness(store)
    assert isinstance(h.consume(h.event(factories.shipped_event, order_id="N-2")), Held)
    h.clock.now += 20
    assert isinstance(h.consume(h.event(factories.delivered_event, order_id="N-2")), Held)
    assert h.at(WINDOW_S - 1) == 0  # the window is counted from the first event
    assert h.at(WINDOW_S + 1) == 1
    (mail,) = h.sender.sent
    assert h.log.records[-1]["template"] == "delivered"
    assert len(h.log.records[-1]["event_ids"]) == 2
    assert mail.recipient == factories.make_customer().email


def test_throttled_updates_merge_into_the_next_allowed_email(store: StateStore) -> None:
    h = Harness(store, throttle_per_hour=1)
    h.consume(h.event(factories.shipped_event, order_id="N-3"))
    assert h.at(WINDOW_S + 1) == 1
    h.consume(h.event(factories.shipped_event, order_id="N-3", shipment_id="SHIP-2"))
    assert h.at(2 * WINDOW_S + 2) == 0  # over the hourly limit: held
    h.consume(h.event(factories.delivered_event, order_id="N-3", shipment_id="SHIP-2"))
    assert h.at(3000) == 0
    assert h.at(WINDOW_S + 1 + 3600 + 1) == 1  # an hour after the first e-mail: one e-mail for both
    assert len(h.sender.sent) == 2
    assert len(h.log.records[-1]["event_ids"]) == 2
    assert h.notifier.pending_count() == 0


def test_confirmations_and_action_needed_news_are_never_throttled(store: StateStore) -> None:
    h = Harness(store, throttle_per_hour=1)
    h.consume(h.event(factories.shipped_event, order_id="N-4"))
    h.at(WINDOW_S + 1)
    assert isinstance(h.consume(h.event(factories.placed_event, order_id="N-5")), Sent)
    h.consume(h.event(factories.out_of_stock_event, order_id="N-5"))
    assert h.at(2 * WINDOW_S + 2) == 1
    assert len(h.sender.sent) == 3


def test_quiet_hours_hold_informational_news_until_they_end(store: StateStore) -> None:
    h = Harness(store, quiet_hours="22-08")
    berlin_23h = datetime(2026, 1, 15, 22, 0, tzinfo=UTC).timestamp() - T0  # 23:00 in Berlin
    h.clock.now = T0 + berlin_23h
    h.consume(h.event(factories.shipped_event, order_id="N-6", customer=factories.make_customer(
        time_zone="Europe/Berlin")))
    assert h.at(berlin_23h + WINDOW_S + 1) == 0
    berlin_8h = datetime(2026, 1, 16, 7, 0, tzinfo=UTC).timestamp() - T0
    assert h.at(berlin_8h - 60) == 0
    assert h.at(berlin_8h + 1) == 1


def test_a_window_survives_a_restart_and_is_sent_once(store: StateStore) -> None:
    h = Harness(store)
    h.consume(h.event(factories.out_of_stock_event, order_id="N-7"))
    h.restart()
    assert h.at(WINDOW_S + 1) == 1
    assert h.at(WINDOW_S + 100) == 0
    assert len(h.sender.sent) == 1


def test_crash_between_smtp_acceptance_and_record_resends_the_same_message_id(store: StateStore) -> None:
    h = Harness(store)
    h.sender.fail_with = asyncio.CancelledError()
    with pytest.raises(asyncio.CancelledError):
        h.consume(h.event(factories.placed_event, order_id="N-8"))
    h.restart()
    assert asyncio.run(h.notifier.resend_unsent(at_start=True)) == 1
    first, again = h.sender.sent
    assert first.message_id == again.message_id and first.data == again.data
    assert asyncio.run(h.notifier.resend_unsent(at_start=True)) == 0  # recorded as sent now


def test_permanent_rejection_dead_letters_and_a_replay_can_send_it(store: StateStore) -> None:
    h = Harness(store)
    placed = h.event(factories.placed_event, order_id="N-9")
    h.sender.fail_with = SmtpPermanentError("550 5.1.1 no such mailbox")
    outcome = h.consume(placed)
    assert isinstance(outcome, DeadLettered) and outcome.reason == "smtp_rejected"
    ((record, reason),) = h.dead.records
    assert reason == "smtp_rejected" and EventCodec().decode(record.value or b"") == placed
    assert isinstance(h.consume(placed), Sent)  # the replayed event after the fix


def test_opting_out_while_a_window_is_open_suppresses_it(store: StateStore) -> None:
    h = Harness(store)
    customer = factories.make_customer(customer_id="C-OPT")
    h.consume(h.event(factories.shipped_event, order_id="N-10", customer=customer))
    with store.transaction() as tx:
        tx.set_preferences("C-OPT", False, h.clock.now)
    assert h.at(WINDOW_S + 1) == 0
    assert h.log.records[-1]["reason"] == "opted_out"
    assert h.notifier.pending_count() == 0


def test_backlog_older_than_the_staleness_guard_is_not_news(store: StateStore) -> None:
    h = Harness(store, max_event_age_h=72)
    old = h.event(factories.placed_event, minutes=-73 * 60, order_id="N-11")
    assert h.consume(old) == Suppressed("too_old")
    assert h.log.records == [{"outcome": "NOT_SENT", "order_id": "N-11", "customer_id": old.customer.customer_id,
                              "reason": "too_old", "event_ids": [old.event_id]}]
    assert h.sender.sent == []


def test_shipping_news_after_delivery_was_told_is_stale(store: StateStore) -> None:
    h = Harness(store)
    h.consume(h.event(factories.delivered_event, order_id="N-12"))
    h.at(WINDOW_S + 1)
    late_shipped = h.event(factories.shipped_event, minutes=-30, order_id="N-12")
    assert h.consume(late_shipped) == Suppressed("stale")
    assert h.at(3 * WINDOW_S) == 0
    assert len(h.sender.sent) == 1


def test_an_email_keeps_its_connection_until_its_outcome_is_recorded(store: StateStore,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # More events in flight than connections: the others are prepared meanwhile, but at most one e-mail per
    # connection is ever accepted and unrecorded -- what a crash at that moment would send twice.
    h = Harness(store, smtp_connections=2, events_in_flight=6)
    guard = threading.Lock()
    unrecorded, peak = [0], [0]

    class CountingSender(RecordingSender):
        async def send(self, mail: OutgoingEmail, template: str = "unknown") -> None:
            await asyncio.sleep(0.005)
            await super().send(mail, template)
            with guard:
                unrecorded[0] += 1
                peak[0] = max(peak[0], unrecorded[0])

    h.sender = CountingSender()
    h.restart()
    record_sent = h.notifier._record_sent

    def slow_store_record(entry: OutboxEntry) -> None:
        time.sleep(0.02)  # a slow store: without the slot, the next e-mails would go out meanwhile
        record_sent(entry)
        with guard:
            unrecorded[0] -= 1

    monkeypatch.setattr(h.notifier, "_record_sent", slow_store_record)
    events = [h.event(factories.placed_event, order_id=f"N-SLOT-{i}") for i in range(6)]

    async def all_at_once() -> list[Any]:
        records = [SourceRecord("orders.events", 0, i, e.order_id.encode(), EventCodec().encode(e), ())
                   for i, e in enumerate(events)]
        return await asyncio.gather(*(h.notifier.on_event(e, r) for e, r in zip(events, records, strict=True)))

    assert all(isinstance(outcome, Sent) for outcome in asyncio.run(all_at_once()))
    assert len(h.sender.sent) == 6 and unrecorded[0] == 0
    assert peak[0] == 2, f"{peak[0]} e-mails were accepted and not yet recorded at once (2 connections)"


def test_a_store_outage_met_while_recording_an_outcome_fails_readiness_until_the_store_is_back(
        store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every event in flight may be past its decision, retrying its outcome: /readyz must hear of the outage there.
    h = Harness(store)
    record_sent, failures, ready_seen = h.notifier._record_sent, [2], []

    def store_away_twice(entry: OutboxEntry) -> None:
        ready_seen.append(h.health.report().checks["state_store"])
        if failures[0]:
            failures[0] -= 1
            raise StateStoreUnavailable("PostgreSQL state store unreachable: connection refused")
        record_sent(entry)

    monkeypatch.setattr(h.notifier, "_record_sent", store_away_twice)
    assert isinstance(h.consume(h.event(factories.placed_event, order_id="N-AWAY")), Sent)
    assert ready_seen == [True, False, False]  # failing while the outcome waits for the store
    assert h.health.report().checks["state_store"] and h.health.store_detail == ""
