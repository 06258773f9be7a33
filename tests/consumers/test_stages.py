"""Decide, then deliver, over a real SQLite store, with a fake clock and a recording SMTP sender.

Windows of an hour (throttle, quiet hours) cannot be waited out over the real
broker; here the clock is ours. ``consume`` decides one record as the consumer
loop does a batch; ``at`` moves the clock and lets the dispatcher deliver what is due.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest

from consumers.dead_letters import SourceRecord
from consumers.decide.decider import BatchDecisions, Decider
from consumers.deliver.composing import RenderJob, RenderResult, render_job
from consumers.deliver.dispatcher import Dispatcher
from consumers.deliver.message import OutgoingEmail, order_root_id
from consumers.deliver.rendering import Renderer
from consumers.exceptions import SmtpPermanentError, SmtpTransientError, StateStoreUnavailable
from consumers.health import ConsumerHealth
from consumers.outcomes import DeadLettered, Held, Outcome, Queued, Suppressed
from consumers.state.outbox import ClaimedEntry, RenderedMail
from consumers.state.store import StateStore
from ordernotify.config import Settings
from ordernotify.retry import Backoff
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
    """Stands in for the SMTP connection pool: records what it was given, or fails as told."""

    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []
        self.fail_with: list[BaseException] = []

    async def send_once(self, mail: OutgoingEmail) -> None:
        if self.fail_with:
            error = self.fail_with.pop(0)
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
        self.records.append({"outcome": "NOT_SENT", **{k: list(v) if k == "event_ids" else v
                                                        for k, v in record.items()}})


class RecordingDeadLetters:
    def __init__(self) -> None:
        self.records: list[tuple[SourceRecord, str]] = []
        self.fail: int = 0

    def publish(self, record: SourceRecord, reason: str, detail: str) -> None:
        if self.fail:
            from consumers.exceptions import DeadLetterError

            self.fail -= 1
            raise DeadLetterError("dead-letter topic unavailable")
        self.records.append((record, reason))


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(f"sqlite:///{tmp_path / 'state.db'}")


class CountingComposer:
    """Renders here, as a worker process would, and counts the batches and e-mails it was asked for."""

    def __init__(self, settings: Settings) -> None:
        self.renderer, self.settings, self.codec = Renderer(settings), settings, EventCodec()
        self.batches: list[int] = []

    async def render(self, jobs: list[RenderJob]) -> list[RenderResult]:
        self.batches.append(len(jobs))
        return [render_job(self.renderer, self.codec, self.settings, job) for job in jobs]

    def close(self) -> None:
        pass


class Harness:
    def __init__(self, store: StateStore, **overrides: Any) -> None:
        self.settings = dataclasses.replace(Settings(), coalesce_window_s=WINDOW_S, **overrides)
        self.composer = CountingComposer(self.settings)
        self.clock = Clock()
        self.sender = RecordingSender()
        self.log = RecordingLog()
        self.dead = RecordingDeadLetters()
        self.health = ConsumerHealth()
        self.store = store
        self.restart()
        self._offset = 0

    def restart(self) -> None:
        self.decider = Decider(self.settings, self.store, self.log, clock=self.clock)  # type: ignore[arg-type]
        self.dispatcher = Dispatcher(self.settings, self.store, self.composer, self.sender,  # type: ignore[arg-type]
                                     self.dead, self.log, health=self.health, clock=self.clock,  # type: ignore[arg-type]
                                     backoff=Backoff(first_s=10.0, cap_s=60.0, jitter=0.0))

    def event(self, factory: Any, minutes: float = 0, **fields: Any) -> OrderEvent:
        occurred = datetime.fromtimestamp(self.clock.now + minutes * 60, UTC)
        return factory(occurred_at=occurred, **fields)  # type: ignore[no-any-return]

    def record(self, event: OrderEvent | bytes, key: bytes = b"k") -> SourceRecord:
        self._offset += 1
        if isinstance(event, bytes):
            return SourceRecord("orders.events", 0, self._offset, key, event, ())
        return SourceRecord("orders.events", 0, self._offset, event.order_id.encode(), EventCodec().encode(event), ())

    def decide(self, *events: OrderEvent | bytes) -> BatchDecisions:
        """One poll batch, decided as the consumer loop does it (the loop publishes the dead letters)."""
        decisions = self.decider.decide([self.record(e) for e in events])
        for dead in decisions.dead_letters:
            self.dead.publish(dead.record, dead.reason, dead.detail)
        return decisions

    def consume(self, event: OrderEvent) -> Outcome:
        (outcome,) = self.decide(event).outcomes
        return outcome

    def deliver(self, ignore_leases: bool = False) -> int:
        return asyncio.run(self.dispatcher.drain(ignore_leases))

    def at(self, seconds_after_t0: float) -> int:
        self.clock.now = T0 + seconds_after_t0
        return self.deliver()

    def status(self, notification_id: str | None = None) -> list[tuple[str, int]]:
        with self.store.transaction() as tx:
            rows = tx._q("SELECT status, attempts FROM outbox ORDER BY created_at").fetchall()
        return [(r[0], int(r[1])) for r in rows]


def test_placed_is_queued_at_once_sent_by_the_dispatcher_and_a_redelivery_is_not(store: StateStore) -> None:
    h = Harness(store)
    placed = h.event(factories.placed_event, order_id="N-1")
    assert h.consume(placed) == Queued("order_placed")
    assert h.sender.sent == []  # deciding sends nothing
    assert h.deliver() == 1
    assert h.consume(placed) == Suppressed("duplicate_delivery")
    assert h.deliver() == 0
    assert len(h.sender.sent) == 1
    assert [r["outcome"] for r in h.log.records] == ["SENT"]  # a redelivery is not news: not logged
    assert h.status() == [("sent", 1)]


def test_a_batch_is_decided_in_one_transaction_and_rendered_in_one_composer_call(store: StateStore) -> None:
    h = Harness(store)
    events = [h.event(factories.placed_event, order_id=f"N-B{i}") for i in range(5)]
    decisions = h.decide(*events, events[0])  # the same event twice in one batch: the second is a redelivery
    assert decisions.outcomes[:5] == [Queued("order_placed")] * 5
    assert decisions.outcomes[5] == Suppressed("duplicate_delivery")
    assert decisions.queued == 5 and decisions.backlog == 5
    assert h.deliver() == 5
    assert h.composer.batches == [5]
    assert sorted(m.message_id for m in h.sender.sent) == sorted(order_root_id(f"N-B{i}", "shop.example")
                                                                  for i in range(5))


def test_events_of_one_order_in_one_batch_see_each_others_facts(store: StateStore) -> None:
    h = Harness(store)
    delivered = h.event(factories.delivered_event, order_id="N-F")
    delivered_again = h.event(factories.delivered_event, order_id="N-F", event_id=str(uuid.uuid4()))
    decisions = h.decide(delivered, delivered_again)
    assert decisions.outcomes == [Held("shipping"), Suppressed("duplicate_news")]


def test_undecodable_records_are_dead_lettered_and_the_rest_of_the_batch_is_decided(store: StateStore) -> None:
    h = Harness(store)
    good = h.event(factories.placed_event, order_id="N-G")
    decisions = h.decide(b"\x00not avro", good)
    assert isinstance(decisions.outcomes[0], DeadLettered) and decisions.outcomes[1] == Queued("order_placed")
    assert [(r.value, reason) for r, reason in h.dead.records] == [(b"\x00not avro", "undecodable")]


def test_a_bug_in_one_events_decision_dead_letters_that_event_alone(store: StateStore,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(store)
    first, broken, last = (h.event(factories.placed_event, order_id=f"N-X{i}") for i in range(3))
    from consumers.decide import decider as decider_module

    real = decider_module.decide

    def buggy(event: OrderEvent, *args: Any) -> Any:
        if event.order_id == "N-X1":
            raise KeyError("a bug")
        return real(event, *args)

    monkeypatch.setattr(decider_module, "decide", buggy)
    decisions = h.decide(first, broken, last)
    assert decisions.outcomes[0] == Queued("order_placed") and decisions.outcomes[2] == Queued("order_placed")
    assert isinstance(decisions.outcomes[1], DeadLettered) and decisions.outcomes[1].reason == "internal_error"
    monkeypatch.setattr(decider_module, "decide", real)
    assert h.consume(broken) == Queued("order_placed")  # rolled back: a replay of the dead letter is decided anew


def test_shipped_then_delivered_in_one_window_is_one_delivered_email(store: StateStore) -> None:
    h = Harness(store)
    assert h.consume(h.event(factories.shipped_event, order_id="N-2")) == Held("shipping")
    h.clock.now += 20
    assert h.consume(h.event(factories.delivered_event, order_id="N-2")) == Held("shipping", coalesced=True)
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
    assert h.decider.pending_count() == 0


def test_confirmations_and_action_needed_news_are_never_throttled(store: StateStore) -> None:
    h = Harness(store, throttle_per_hour=1)
    h.consume(h.event(factories.shipped_event, order_id="N-4"))
    h.at(WINDOW_S + 1)
    assert h.consume(h.event(factories.placed_event, order_id="N-5")) == Queued("order_placed")
    h.consume(h.event(factories.out_of_stock_event, order_id="N-5"))
    assert h.at(2 * WINDOW_S + 2) == 2
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


def test_crash_between_smtp_acceptance_and_record_resends_the_same_bytes_and_message_id(store: StateStore) -> None:
    h = Harness(store)
    h.consume(h.event(factories.placed_event, order_id="N-8"))
    h.sender.fail_with = [asyncio.CancelledError()]
    with pytest.raises(asyncio.CancelledError):
        h.deliver()
    assert h.status() == [("sending", 0)]  # rendered and stored before the attempt
    h.restart()
    assert h.deliver() == 0  # the dead process's lease still holds
    h.clock.now += h.settings.outbox_lease_s + 1
    assert h.deliver() == 1
    first, again = h.sender.sent
    assert first.message_id == again.message_id and first.data == again.data
    assert h.deliver() == 0  # recorded as sent now
    assert h.composer.batches == [1]  # rendered once: the resend took the stored bytes


def test_a_store_of_our_own_is_resent_at_start_without_waiting_for_the_lease(store: StateStore) -> None:
    h = Harness(store)
    h.consume(h.event(factories.placed_event, order_id="N-8b"))
    h.sender.fail_with = [asyncio.CancelledError()]
    with pytest.raises(asyncio.CancelledError):
        h.deliver()
    h.restart()
    assert h.deliver(ignore_leases=True) == 1


def test_permanent_rejection_dead_letters_and_a_replay_can_send_it(store: StateStore) -> None:
    h = Harness(store)
    placed = h.event(factories.placed_event, order_id="N-9")
    h.consume(placed)
    h.sender.fail_with = [SmtpPermanentError("550 5.1.1 no such mailbox")]
    assert h.deliver() == 0
    ((record, reason),) = h.dead.records
    assert reason == "smtp_rejected" and EventCodec().decode(record.value or b"") == placed
    assert (record.topic, record.partition, record.offset) == ("orders.events", 0, 1)
    assert h.status() == [("dead_lettered", 1)]
    assert h.consume(placed) == Queued("order_placed")  # the replayed event after the fix
    assert h.deliver() == 1


def test_a_failed_window_is_released_only_once_its_dead_letters_are_acknowledged(store: StateStore) -> None:
    h = Harness(store)
    shipped = h.event(factories.shipped_event, order_id="N-DL")
    h.consume(shipped)
    h.sender.fail_with = [SmtpPermanentError("550 5.1.1 no such mailbox")]
    h.dead.fail = 2  # the dead-letter topic refuses twice, then takes it
    h.dispatcher._backoff = Backoff(first_s=0.001, cap_s=0.002)
    assert h.at(WINDOW_S + 1) == 0
    assert [reason for _, reason in h.dead.records] == ["smtp_rejected"]
    assert h.status() == [("dead_lettered", 1)]


def test_a_failed_entry_whose_dead_letter_never_went_out_is_dead_lettered_by_the_next_claimer(
        store: StateStore) -> None:
    h = Harness(store)
    h.consume(h.event(factories.placed_event, order_id="N-DL2"))
    h.sender.fail_with = [SmtpPermanentError("550 5.1.1 no such mailbox")]
    h.dead.fail = 10**6  # unwritable for good: the dispatcher dies trying
    h.dispatcher._backoff = Backoff(first_s=0.001, cap_s=0.002)

    async def die_trying() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(h.dispatcher.drain(), 0.5)

    asyncio.run(die_trying())
    assert h.status() == [("failed", 1)] and h.dead.records == []  # kept, with its events: nothing is lost
    h.dead.fail = 0
    h.restart()
    h.clock.now += h.settings.outbox_lease_s + 1
    h.deliver()
    assert [reason for _, reason in h.dead.records] == ["smtp_rejected"]
    assert h.status() == [("dead_lettered", 1)]


def test_a_transient_failure_lets_the_entry_go_until_its_backoff_has_passed(store: StateStore) -> None:
    h = Harness(store, smtp_retry_budget_s=25)
    h.consume(h.event(factories.placed_event, order_id="N-T"))
    h.sender.fail_with = [SmtpTransientError("451 try later")]
    assert h.deliver() == 0
    assert h.status() == [("sending", 1)]
    assert h.deliver() == 0  # backoff (10 s) not over: nobody takes it
    h.clock.now += 11
    assert h.deliver() == 1
    assert len(h.sender.sent) == 1 and h.composer.batches == [1]


def test_transient_failures_past_the_retry_budget_dead_letter_the_email(store: StateStore) -> None:
    h = Harness(store, smtp_retry_budget_s=25)
    h.consume(h.event(factories.placed_event, order_id="N-E"))
    h.sender.fail_with = [SmtpTransientError("451 try later")] * 5
    for _ in range(5):
        h.deliver()
        h.clock.now += 61
    assert [reason for _, reason in h.dead.records] == ["smtp_retries_exhausted"]
    assert h.status() == [("dead_lettered", 2)]  # two SMTP attempts


def test_a_render_failure_dead_letters_the_events_and_sends_nothing(store: StateStore) -> None:
    h = Harness(store)
    placed = h.event(factories.placed_event, order_id="N-R")
    h.consume(placed)

    async def failing(jobs: list[RenderJob]) -> list[RenderResult]:
        from consumers.state.outbox import Failure

        return [Failure("render_failed", "template error") for _ in jobs]

    h.composer.render = failing  # type: ignore[method-assign]
    assert h.deliver() == 0
    assert [reason for _, reason in h.dead.records] == ["render_failed"]
    assert h.sender.sent == []


def test_opting_out_while_a_window_is_open_suppresses_it(store: StateStore) -> None:
    h = Harness(store)
    customer = factories.make_customer(customer_id="C-OPT")
    h.consume(h.event(factories.shipped_event, order_id="N-10", customer=customer))
    with store.transaction() as tx:
        tx.set_preferences("C-OPT", False, h.clock.now)
    assert h.at(WINDOW_S + 1) == 0
    time.sleep(0.1)  # the communications log is written off the event loop
    assert h.log.records[-1]["reason"] == "opted_out"
    assert h.decider.pending_count() == 0


def test_backlog_older_than_the_staleness_guard_is_not_news(store: StateStore) -> None:
    h = Harness(store, max_event_age_h=72)
    old = h.event(factories.placed_event, minutes=-73 * 60, order_id="N-11")
    assert h.consume(old) == Suppressed("too_old")
    assert h.log.records == [{"outcome": "NOT_SENT", "order_id": "N-11", "customer_id": old.customer.customer_id,
                              "reason": "too_old", "event_ids": [old.event_id]}]
    assert h.deliver() == 0 and h.sender.sent == []


def test_too_old_events_are_said_in_the_log_without_personal_data(store: StateStore,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(store, max_event_age_h=72)
    old = [h.event(factories.placed_event, minutes=-days * 24 * 60, order_id=f"N-O{days}") for days in (9, 5)]
    fresh = h.event(factories.placed_event, order_id="N-O0")
    with caplog.at_level(logging.INFO):
        decisions = h.decide(*old, fresh)
    assert decisions.outcomes == [Suppressed("too_old"), Suppressed("too_old"), Queued("order_placed")]
    (line,) = [r for r in caplog.records if r.name == "consumers.decide.too_old_report"]
    assert line.getMessage() == ("skipped 2 events older than 72 h (max_event_age_h), not e-mailed; "
                                 "newest was 5 d old")
    assert "N-O" not in line.getMessage() and "@" not in line.getMessage()


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
    # More e-mails claimed than connections: at most one e-mail per connection is ever accepted and unrecorded --
    # what a crash at that moment would send twice.
    h = Harness(store, smtp_connections=2)
    guard = threading.Lock()
    unrecorded, peak = [0], [0]

    class CountingSender(RecordingSender):
        async def send_once(self, mail: OutgoingEmail) -> None:
            await asyncio.sleep(0.005)
            await super().send_once(mail)
            with guard:
                unrecorded[0] += 1
                peak[0] = max(peak[0], unrecorded[0])

    h.sender = CountingSender()
    h.restart()
    record_sent = h.dispatcher._record_sent

    def slow_store_record(sent: list[tuple[ClaimedEntry, RenderedMail]]) -> None:
        time.sleep(0.02)  # a slow store: without the rule, the next e-mails would go out meanwhile
        record_sent(sent)
        with guard:
            unrecorded[0] -= len(sent)

    monkeypatch.setattr(h.dispatcher, "_record_sent", slow_store_record)
    h.decide(*(h.event(factories.placed_event, order_id=f"N-SLOT-{i}") for i in range(6)))
    assert h.deliver() == 6
    assert len(h.sender.sent) == 6 and unrecorded[0] == 0
    assert peak[0] == 2, f"{peak[0]} e-mails were accepted and not yet recorded at once (2 connections)"


def test_a_slow_recipient_holds_one_connection_while_the_others_keep_sending(store: StateStore) -> None:
    h = Harness(store, smtp_connections=2)

    class OneSlowRecipient(RecordingSender):
        async def send_once(self, mail: OutgoingEmail) -> None:
            if b"N-SLOW" in mail.data:
                await asyncio.sleep(0.5)
            await super().send_once(mail)

    h.sender = OneSlowRecipient()
    h.restart()
    h.decide(h.event(factories.placed_event, order_id="N-SLOW"),
             *(h.event(factories.placed_event, order_id=f"N-FAST-{i}") for i in range(5)))
    assert h.deliver() == 6
    assert b"N-SLOW" in h.sender.sent[-1].data  # the five others went out while it waited


def test_a_store_outage_met_while_recording_an_outcome_fails_readiness_until_the_store_is_back(
        store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every e-mail in flight may be past its send, retrying its outcome: /readyz must hear of the outage there.
    h = Harness(store)
    h.dispatcher._backoff = Backoff(first_s=0.001, cap_s=0.002)
    record_sent, failures, ready_seen = h.dispatcher._record_sent, [2], []

    def store_away_twice(sent: list[tuple[ClaimedEntry, RenderedMail]]) -> None:
        ready_seen.append(h.health.report().checks["state_store"])
        if failures[0]:
            failures[0] -= 1
            raise StateStoreUnavailable("PostgreSQL state store unreachable: connection refused")
        record_sent(sent)

    monkeypatch.setattr(h.dispatcher, "_record_sent", store_away_twice)
    h.consume(h.event(factories.placed_event, order_id="N-AWAY"))
    assert h.deliver() == 1
    assert ready_seen == [True, False, False]  # failing while the outcome waits for the store
    assert h.health.report().checks["state_store"] and h.health.store_detail == ""
    assert h.status() == [("sent", 1)]


def test_the_communications_log_never_makes_its_caller_wait_for_kafka() -> None:
    # kafka-python's send() blocks while the topic's metadata is unknown (up to max_block_ms): not the caller.
    from consumers.comms_log import CommsLog

    class SlowProducer:
        def __init__(self) -> None:
            self.threads: list[str] = []

        def send(self, topic: str, key: bytes, value: bytes) -> Any:
            time.sleep(0.3)
            self.threads.append(threading.current_thread().name)
            raise TimeoutError("no metadata")  # as KafkaTimeoutError would: logged, never raised to the caller

        def flush(self, timeout_s: float) -> None:
            return None

    producer = SlowProducer()
    comms = CommsLog(producer, "notifications.sent")
    started = time.monotonic()
    comms.sent(order_id="O-1", customer_id="C-1", template="order_placed", locale="en", subject="s",
               message_id="<m@x>", event_ids=["e1"])
    comms.not_sent(order_id="O-1", customer_id="C-1", reason="too_old", event_ids=["e2"])
    assert time.monotonic() - started < 0.1
    comms.flush(5)
    comms.close()
    assert len(producer.threads) == 2 and threading.current_thread().name not in producer.threads


def test_a_window_that_cannot_be_closed_is_set_aside_and_the_others_are_sent(store: StateStore,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(store)
    h.consume(h.event(factories.out_of_stock_event, order_id="N-BROKEN"))
    h.consume(h.event(factories.out_of_stock_event, order_id="N-FINE"))
    from consumers.policy import windows

    real = windows.compose

    def broken_for_one(group: Any, events: list[OrderEvent]) -> Any:
        if events[0].order_id == "N-BROKEN":
            raise KeyError("a bug")
        return real(group, events)

    monkeypatch.setattr(windows, "compose", broken_for_one)
    assert h.at(WINDOW_S + 1) == 1
    assert h.decider.pending_count() == 1  # kept, nothing lost
    monkeypatch.setattr(windows, "compose", real)
    assert h.at(WINDOW_S + 600) == 0  # set aside for an hour
    assert h.at(WINDOW_S + 3602) == 1


def test_an_entry_taken_over_after_this_consumers_lease_ran_out_is_not_sent_here(store: StateStore) -> None:
    h = Harness(store, smtp_connections=1)
    h.decide(h.event(factories.placed_event, order_id="N-L1"), h.event(factories.placed_event, order_id="N-L2"))
    second: list[str] = []

    class StallingSender(RecordingSender):
        async def send_once(self, mail: OutgoingEmail) -> None:
            await super().send_once(mail)
            if len(self.sent) == 1:  # this process stalls past its lease; another consumer claims what is left
                h.clock.now += h.settings.outbox_lease_s + 1
                with store.transaction() as tx:
                    second.extend(c.entry.order_id for c in
                                  tx.outbox.claim(h.clock.now, "other", h.clock.now + 15, 10))

    h.sender = StallingSender()
    h.restart()
    assert h.deliver() == 1
    # The other consumer took both: N-L1 was sent and not yet recorded (the one duplicate a connection may
    # cause); N-L2 is the other's now and was not sent here.
    assert sorted(second) == ["N-L1", "N-L2"] and len(h.sender.sent) == 1


def test_an_email_the_render_process_dies_on_is_isolated_retried_and_dead_lettered_after_three(
        store: StateStore) -> None:
    from consumers.exceptions import ComposerUnavailable

    h = Harness(store)
    h.decide(h.event(factories.placed_event, order_id="N-POISON"),
             *(h.event(factories.placed_event, order_id=f"N-OK-{i}") for i in range(3)))
    real = h.composer.render

    async def dies_on_the_poison(jobs: list[RenderJob]) -> list[RenderResult]:
        if any(b"N-POISON" in raw for job in jobs for raw in job.events):
            raise ComposerUnavailable("a render worker process died")
        return await real(jobs)

    h.composer.render = dies_on_the_poison  # type: ignore[method-assign]
    h.dispatcher._backoff = Backoff(first_s=0.001, cap_s=0.002, jitter=0.0)
    assert h.deliver() == 3  # the others, rendered one by one after the batch failed
    for _ in range(3):
        h.clock.now += 1
        h.deliver()
    assert [reason for _, reason in h.dead.records] == ["render_crashed"]
    assert h.decider.outbox_backlog() == 0


def test_a_locked_database_inside_one_events_decision_holds_the_batch_back_and_dead_letters_nothing(
        store: StateStore) -> None:
    import sqlite3

    h = Harness(store)
    real, failing = store._conn, [True]

    class LockedOnce:
        """The SQLite connection, answering "database is locked" once, in the middle of the batch."""

        def execute(self, sql: str, params: Any = ()) -> Any:
            if failing[0] and sql.startswith("SELECT fact FROM order_facts") and params == ("N-LOCK-1",):
                failing[0] = False
                raise sqlite3.OperationalError("database is locked")
            return real.execute(sql, params)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    store._conn = LockedOnce()
    events = [h.event(factories.placed_event, order_id=f"N-LOCK-{i}") for i in range(3)]
    with pytest.raises(StateStoreUnavailable):  # retried by the consumer loop, as the whole batch
        h.decide(*events)
    store._conn = real
    assert h.dead.records == [] and h.decider.outbox_backlog() == 0  # nothing written, nothing dead-lettered
    assert h.decide(*events).outcomes == [Queued("order_placed")] * 3


def test_a_batch_decided_again_after_a_store_outage_counts_its_undecodable_records_once(store: StateStore) -> None:
    h = Harness(store)
    real, failing = store._conn, [True]

    class LockedOnce:
        def execute(self, sql: str, params: Any = ()) -> Any:
            if failing[0] and sql.startswith("INSERT INTO processed_events"):
                failing[0] = False
                import sqlite3

                raise sqlite3.OperationalError("database is locked")
            return real.execute(sql, params)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    store._conn = LockedOnce()
    batch = [b"\x00not avro", h.event(factories.placed_event, order_id="N-COUNT")]
    records = [h.record(item) for item in batch]
    with pytest.raises(StateStoreUnavailable):
        h.decider.decide(records)
    store._conn = real
    h.decider.decide(records)
    counted = h.decider._metrics.registry.get_sample_value("ordernotify_decode_failures_total",
                                                           {"reason": "undecodable"})
    assert counted == 1
