"""Apply the policy: each event is one state transaction; windows are flushed when they are due.

Send exactly once, as far as SMTP allows: the intent (the exact message
bytes) is recorded in the outbox in the same transaction as the decision,
the outcome after the SMTP server answered. A crash between the two leaves an
outbox entry in state "sending", which is sent again with the same bytes and
Message-ID; that resend is the one remaining window for a duplicate e-mail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from consumers.comms_log import CommsLog
from consumers.composing import Composer, outbox_entry
from consumers.dead_letters import DeadLetters, SourceRecord
from consumers.exceptions import RenderError, SmtpError, SmtpPermanentError, SmtpRetriesExhausted
from consumers.health import ConsumerHealth
from consumers.message import OutgoingEmail
from consumers.notification import Notification
from consumers.outcomes import DeadLettered, Held, Outcome, Sent, Suppressed
from consumers.policy.rules import (
    INFORMATIONAL,
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
from consumers.rendering import Renderer
from consumers.smtp_sender import SmtpSender
from consumers.state.store import DueGroup, OutboxEntry, PendingEvent, StateStore, StateTx
from ordernotify.config import Settings
from ordernotify.errors import OrderNotifyError
from ordernotify.metrics import DecisionOutcome, FailureClass, Metrics
from schemas.codec import EventCodec
from schemas.events import OrderEvent

log = logging.getLogger(__name__)

CLAIM_LEASE_S = 60.0
FLUSH_BATCH = 100


@dataclass(frozen=True, slots=True)
class _Failed:
    """A composed e-mail that cannot be produced; its events go to the dead-letter topic."""

    reason: str
    detail: str
    records: tuple[SourceRecord, ...]


@dataclass(frozen=True, slots=True)
class _Composed:
    """A window's e-mail, recorded in the outbox and ready to send."""

    entry: OutboxEntry
    records: tuple[SourceRecord, ...]
    facts: frozenset[str]
    first_occurred_at: float


class Notifier:
    def __init__(
        self,
        settings: Settings,
        store: StateStore,
        renderer: Renderer,
        sender: SmtpSender,
        comms_log: CommsLog,
        dead_letters: DeadLetters,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        composer: Composer | None = None,
        health: ConsumerHealth | None = None,
    ) -> None:
        """``composer``: where e-mails decided on the spot are rendered (worker processes, see
        consumers/composing.py); None: in the same worker thread as the decision, one hop in all."""
        self._settings = settings
        self._composer = composer
        self._metrics = metrics or Metrics()
        self._health = health or ConsumerHealth()
        self._store = store
        self._renderer = renderer
        self._sender = sender
        self._log = comms_log
        self._dead_letters = dead_letters
        self._clock = clock
        self._codec = EventCodec()
        self._max_age = timedelta(hours=settings.max_event_age_h)
        self._send_lease_s = settings.smtp_retry_budget_s + 60.0
        self.sent_by_template: Counter[str] = Counter()
        self.not_sent_by_reason: Counter[str] = Counter()
        # Outcomes get a thread of their own: queued behind a batch's decisions in the shared default
        # executor, an accepted e-mail would wait long unrecorded -- the window for a duplicate after a crash.
        self._outcomes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-outcome")
        # An e-mail keeps its SMTP connection's slot until its outcome is recorded: a crash then leaves at
        # most one accepted-but-unrecorded e-mail per connection (the duplicates it can cause), and while
        # the store is away no more than that go out. Events prepared ahead (--events-in-flight) wait here.
        self._sending = asyncio.Semaphore(settings.smtp_connections)

    # -- one consumed event -------------------------------------------------------------------
    async def on_event(self, event: OrderEvent, record: SourceRecord) -> Outcome:
        """Decide, send if due, record the outcome. The caller bounds how many events run at once
        (:class:`~consumers.handler.RecordHandler`, ``--events-in-flight``); their e-mails then take turns
        on the SMTP connections (:meth:`_send`)."""
        try:
            if self._composer is None:
                decision, entry, coalesced = await asyncio.to_thread(self._render_and_decide, event, record)
            else:
                decision, entry, coalesced = await self._compose_then_decide(event, record, self._composer)
        except _Rollback as rollback:
            return await self._dead_letter(rollback.failure)
        if isinstance(decision, Suppress):
            self.not_sent_by_reason[decision.reason.value] += 1
            self._metrics.count_decision(DecisionOutcome.SUPPRESSED, decision.reason.value)
            if decision.reason is not SuppressReason.DUPLICATE_DELIVERY:
                self._log.not_sent(order_id=event.order_id, customer_id=event.customer.customer_id,
                                   reason=decision.reason.value, event_ids=[event.event_id])
            return Suppressed(decision.reason.value)
        if isinstance(decision, Hold):
            self._metrics.count_decision(DecisionOutcome.COALESCED if coalesced else DecisionOutcome.HELD,
                                         decision.group.value)
            return Held(decision.group.value)
        assert entry is not None
        return await self._send(entry, (record,), facts_of(event), event.occurred_at.timestamp())

    def _render_and_decide(
        self, event: OrderEvent, record: SourceRecord
    ) -> tuple[SendNow | Hold | Suppress, OutboxEntry | None, bool]:
        """One trip to a worker thread for both steps (a hop costs ~150 µs of CPU)."""
        likely = self._likely_notification(event)
        try:
            rendered = None if likely is None else (likely, self._outbox_entry(likely))
        except RenderError:
            rendered = None  # rendered again in the transaction, which dead-letters it
        return self._decide_in_store(event, record, rendered)

    async def _compose_then_decide(
        self, event: OrderEvent, record: SourceRecord, composer: Composer
    ) -> tuple[SendNow | Hold | Suppress, OutboxEntry | None, bool]:
        """The same steps, with the render in the composer's worker process: three hops, but the render's
        CPU is off this process (and its GIL)."""
        likely = await asyncio.to_thread(self._likely_notification, event)
        rendered = None
        if likely is not None:
            try:
                rendered = likely, await composer.compose(likely)
            except RenderError:
                rendered = None  # rendered again in the transaction, which dead-letters it
        return await asyncio.to_thread(self._decide_in_store, event, record, rendered)

    def _likely_notification(self, event: OrderEvent) -> Notification | None:
        """The e-mail the event will likely cause, from a read only: it is rendered outside the store's lock,
        so that decisions hold the lock briefly and an accepted e-mail's outcome is recorded without waiting
        behind a render."""
        now = self._clock()
        with self._store.transaction() as tx:
            known = tx.facts(event.order_id)
            opted_out = event.event_type in INFORMATIONAL and tx.opted_out(event.customer.customer_id)
        decision = decide(event, known, opted_out, _utc(now), self._max_age)
        return decision.notification if isinstance(decision, SendNow) else None

    def _decide_in_store(
        self, event: OrderEvent, record: SourceRecord, rendered: tuple[Notification, OutboxEntry] | None = None
    ) -> tuple[SendNow | Hold | Suppress, OutboxEntry | None, bool]:
        """The decision, the outbox entry to send now if any, and whether the event joined an open window."""
        now = self._clock()
        with self._store.transaction() as tx:
            if not tx.claim_event(event.event_id, event.order_id, now):
                return Suppress(SuppressReason.DUPLICATE_DELIVERY), None, False
            known = tx.facts(event.order_id)
            opted_out = event.event_type in INFORMATIONAL and tx.opted_out(event.customer.customer_id)
            decision = decide(event, known, opted_out, _utc(now), self._max_age)
            tx.add_facts(event.order_id, facts_of(event))
            if isinstance(decision, Hold):
                pending = PendingEvent(event.event_id, record.value or b"", record.topic, record.partition,
                                       record.offset)
                new_due = now + self._settings.coalesce_window_s
                due = tx.hold(pending, event.order_id, decision.group.value, event.customer.customer_id,
                              event.occurred_at.timestamp(), new_due)
                return decision, None, due != new_due
            if isinstance(decision, Suppress):
                return decision, None, False
            try:
                # Facts may have changed since the render ahead (another consumer): then render again.
                entry = (rendered[1] if rendered is not None and rendered[0] == decision.notification
                         else self._outbox_entry(decision.notification))
            except RenderError as exc:
                self._metrics.count_email_failed(decision.notification.template.value, FailureClass.RENDER)
                # Roll back: nothing of this event is recorded, so a replay after the fix sends it.
                raise _Rollback(_Failed(exc.reason, str(exc), (record,))) from exc
            tx.add_outbox(entry, now, now + self._send_lease_s)
            return decision, entry, False

    # -- windows that are due --------------------------------------------------------------------
    async def flush_due(self) -> int:
        """Send every due window; returns how many e-mails went out."""
        now = self._clock()
        groups = await asyncio.to_thread(self._claim_due, now)
        outcomes = await asyncio.gather(*(self._flush_group(group) for group in groups))
        return sum(1 for outcome in outcomes if isinstance(outcome, Sent))

    def _claim_due(self, now: float) -> list[DueGroup]:
        with self._store.transaction() as tx:
            return tx.claim_due_groups(now, now + CLAIM_LEASE_S, FLUSH_BATCH)

    async def _flush_group(self, group: DueGroup) -> Outcome | None:
        result = await asyncio.to_thread(self._compose_group, group)
        if isinstance(result, _Failed):
            return await self._dead_letter(result)
        if isinstance(result, _Composed):
            return await self._send(result.entry, result.records, result.facts, result.first_occurred_at)
        return result

    def _compose_group(self, group: DueGroup) -> _Composed | _Failed | Outcome | None:
        now = self._clock()
        with self._store.transaction() as tx:
            pending = tx.group_events(group.order_id, group.group)
            if not pending:
                tx.finish_group(group.order_id, group.group, [])
                return None
            events = [self._codec.decode(p.event) for p in pending]
            records = tuple(
                SourceRecord(p.src_topic, p.src_partition, p.src_offset, group.order_id.encode(), p.event, ())
                for p in pending
            )
            event_ids = [p.event_id for p in pending]
            if group.group == Group.SHIPPING.value:
                held = self._hold_informational(tx, group, events, now)
                if held is not None:
                    return held
            notification = compose(Group(group.group), events)
            try:
                entry = self._outbox_entry(notification)
            except RenderError as exc:
                tx.finish_group(group.order_id, group.group, event_ids)
                tx.release_events(group.order_id, event_ids, _facts(events))
                self._metrics.count_email_failed(notification.template.value, FailureClass.RENDER)
                return _Failed(exc.reason, str(exc), records)
            tx.add_outbox(entry, now, now + self._send_lease_s)
            tx.finish_group(group.order_id, group.group, event_ids)
            return _Composed(entry, records, _facts(events), min(e.occurred_at.timestamp() for e in events))

    def _hold_informational(self, tx: StateTx, group: DueGroup, events: list[OrderEvent], now: float) -> Outcome | None:
        """Opt-out, throttle and quiet hours for shipped/delivered news; None means: send it now."""
        event_ids = [e.event_id for e in events]
        if tx.opted_out(group.customer_id):
            tx.finish_group(group.order_id, group.group, event_ids)
            self.not_sent_by_reason[SuppressReason.OPTED_OUT.value] += len(event_ids)
            self._metrics.count_decision(DecisionOutcome.SUPPRESSED, SuppressReason.OPTED_OUT.value)
            self._log.not_sent(order_id=group.order_id, customer_id=group.customer_id,
                               reason=SuppressReason.OPTED_OUT.value, event_ids=event_ids)
            return Suppressed(SuppressReason.OPTED_OUT.value)
        recent = [_utc(t) for t in tx.informational_sent_since(group.customer_id, now - 3600)]
        later = [
            t for t in (
                throttled_until(recent, _utc(now), self._settings.throttle_per_hour),
                quiet_until(_utc(now), events[-1].customer.time_zone, self._settings.quiet_hours_range()),
            ) if t is not None
        ]
        if not later:
            return None
        due = max(later)
        tx.postpone_group(group.order_id, group.group, due.timestamp())
        self._metrics.count_decision(DecisionOutcome.THROTTLED, group.group)
        log.debug("postponed a %s window until %s (throttle or quiet hours)", group.group, due.isoformat())
        return Held("throttled" if recent and len(recent) >= self._settings.throttle_per_hour else "quiet_hours")

    # -- crash recovery ----------------------------------------------------------------------------
    async def resend_unsent(self, at_start: bool = False) -> int:
        """Send outbox entries whose sender died between intent and outcome (same bytes, same Message-ID)."""
        now = self._clock()
        ignore_leases = at_start and self._store.exclusive

        def claim() -> list[OutboxEntry]:
            with self._store.transaction() as tx:
                return tx.claim_unsent(now, now + self._send_lease_s, FLUSH_BATCH, ignore_leases)

        entries = await asyncio.to_thread(claim)
        for entry in entries:
            log.warning("re-sending notification %s: its outcome was never recorded", entry.notification_id)
        # A permanent failure here has no source record left to dead-letter: it is logged and kept as
        # "failed" in the outbox (the events' ids are in the entry).
        outcomes = await asyncio.gather(*(self._send(entry, (), frozenset()) for entry in entries))
        return sum(1 for outcome in outcomes if isinstance(outcome, Sent))

    # -- sending -------------------------------------------------------------------------------------
    def _outbox_entry(self, notification: Notification) -> OutboxEntry:
        return outbox_entry(self._renderer, notification, self._settings)

    async def _send(self, entry: OutboxEntry, records: tuple[SourceRecord, ...], facts: frozenset[str],
                    first_occurred_at: float | None = None) -> Outcome:
        mail = OutgoingEmail(entry.message_id, entry.mail_from, entry.rcpt_to, entry.data)
        async with self._sending:
            try:
                await self._sender.send(mail, entry.template)
            except SmtpError as exc:
                failure = (FailureClass.PERMANENT if isinstance(exc, SmtpPermanentError)
                           else FailureClass.EXHAUSTED if isinstance(exc, SmtpRetriesExhausted)
                           else FailureClass.TRANSIENT)
                self._metrics.count_email_failed(entry.template, failure)
                await self._record_outcome(self._record_failure, entry, facts)
                failed: _Failed | None = _Failed(exc.reason, str(exc), records)
            else:
                failed = None
                await self._record_outcome(self._record_sent, entry)
        if failed is not None:
            return await self._dead_letter(failed)
        self.sent_by_template[entry.template] += 1
        self._metrics.email_sent(entry.template, first_occurred_at)
        self._metrics.count_decision(DecisionOutcome.SENT)
        self._log.sent(order_id=entry.order_id, customer_id=entry.customer_id, template=entry.template,
                       locale=entry.locale, subject=entry.subject, message_id=entry.message_id,
                       event_ids=entry.event_ids)
        return Sent(entry.message_id, entry.template)

    async def _record_outcome(self, record: Callable[..., None], *args: Any) -> None:
        """Record what the SMTP server answered, however long the store is away: the e-mail went out
        (or was refused), and an entry left "sending" would be sent again."""
        attempt = 0
        while True:
            try:
                await asyncio.get_running_loop().run_in_executor(self._outcomes, record, *args)
                if attempt:
                    self._health.store_reached()
                return
            except OrderNotifyError as exc:
                if not exc.retriable:
                    raise
                # Every event in flight may be waiting here, none in the record handler: /readyz hears it here.
                self._health.store_reached(exc)
                attempt += 1
                log.warning("state store unavailable to record an outcome (attempt %d): %s", attempt, exc)
                await asyncio.sleep(min(5.0, 0.2 * 2**attempt))

    def _record_sent(self, entry: OutboxEntry) -> None:
        with self._store.transaction() as tx:
            tx.mark_sent(entry.notification_id, self._clock())

    def _record_failure(self, entry: OutboxEntry, facts: frozenset[str]) -> None:
        with self._store.transaction() as tx:
            tx.mark_failed(entry.notification_id, self._clock())
            tx.release_events(entry.order_id, entry.event_ids, facts)

    async def _dead_letter(self, failure: _Failed) -> DeadLettered:
        for record in failure.records:
            await asyncio.to_thread(self._dead_letters.publish, record, failure.reason, failure.detail)
            self._metrics.count_dead_letter(failure.reason)
        self._metrics.count_decision(DecisionOutcome.DEAD_LETTERED, failure.reason)
        return DeadLettered(failure.reason, failure.detail)

    def close(self) -> None:
        self._outcomes.shutdown(wait=True)
        if self._composer is not None:
            self._composer.close()

    def pending_count(self, due_within_s: float | None = None) -> int:
        """Open windows; with ``due_within_s``, only those due that soon (not throttled for an hour)."""
        due_before = None if due_within_s is None else self._clock() + due_within_s
        with self._store.transaction() as tx:
            return tx.pending_count(due_before)

    async def run_timers(self, stop: asyncio.Event, tick_s: float = 0.5, recovery_every_s: float = 30.0) -> None:
        """Flush due windows every tick and re-send orphaned outbox entries now and then, until ``stop``."""
        last_recovery = time.monotonic()
        while not stop.is_set():
            try:
                await self.flush_due()
                self._metrics.pending_notifications.set(await asyncio.to_thread(self.pending_count))
                if time.monotonic() - last_recovery > recovery_every_s:
                    last_recovery = time.monotonic()
                    await self.resend_unsent()
                self._health.store_reached()
            except Exception as exc:  # the timer must outlive a store outage or a bug in one window
                if isinstance(exc, OrderNotifyError) and exc.retriable:
                    self._health.store_reached(exc)
                log.warning("flushing windows failed, will retry: %s", exc, exc_info=not getattr(exc, "retriable", 0))
            try:
                await asyncio.wait_for(stop.wait(), tick_s)
            except TimeoutError:
                pass


class _Rollback(Exception):
    """Leaves the store transaction, rolling it back, carrying what to dead-letter."""

    def __init__(self, failure: _Failed) -> None:
        super().__init__(failure.detail)
        self.failure = failure


def _facts(events: list[OrderEvent]) -> frozenset[str]:
    return frozenset().union(*(facts_of(e) for e in events))


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
