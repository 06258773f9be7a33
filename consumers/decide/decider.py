"""A poll batch -> decisions, in one state-store transaction.

Every record is decoded; the events are judged by the rules in offset order (so one order's events
see each other's facts), and what the batch decided is written at once: event ids, order facts,
windows joined or opened, and an outbox entry for news that is due now. Nothing is rendered or sent
here. What cannot be decided (undecodable bytes, an unknown schema, a broken business rule, a bug
in one event's decision) becomes a dead letter for the caller to publish before it commits offsets.

The whole batch is retried when the store is unavailable (nothing of it was written); a bug in one
event rolls the batch back, and it is written again with a savepoint per event, so that the bad event
alone is rolled back and dead-lettered.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from consumers.comms_log import CommsLog
from consumers.dead_letters import SourceRecord
from consumers.decide.too_old_report import TooOldReport
from consumers.outcomes import DeadLettered, Held, Outcome, Queued, Suppressed
from consumers.policy.rules import (
    INFORMATIONAL,
    Group,
    Hold,
    SendNow,
    Suppress,
    SuppressReason,
    decide,
    facts_of,
    refund_joins,
    superseded_by,
)
from consumers.policy.windows import NotSent
from consumers.state.outbox import SourceEvent
from consumers.state.store import StateStore, StateTx
from ordernotify.config import Settings
from ordernotify.errors import OrderNotifyError
from ordernotify.metrics import DecisionOutcome, Metrics
from schemas.codec import EventCodec
from schemas.events import EventType, OrderEvent
from schemas.exceptions import DecodeError

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal_error"  # a dead letter's reason when deciding failed for a bug, not the bytes
# events that may make pending news moot
_SUPERSEDING = frozenset({EventType.ORDER_CANCELLED, EventType.ORDER_DELIVERED, EventType.DELIVERY_PROBLEM})


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: SourceRecord
    reason: str
    detail: str


@dataclass
class BatchDecisions:
    """What one batch came to: an outcome per record (in the batch's order) and what the caller must publish."""

    outcomes: list[Outcome] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    not_sent: list[NotSent] = field(default_factory=list)
    superseded: int = 0  # pending events taken out of their windows by later news (also in not_sent)
    queued: int = 0
    backlog: int = 0  # outbox entries not yet done, after this batch


class Decider:
    def __init__(self, settings: Settings, store: StateStore, comms_log: CommsLog, metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._store = store
        self._log = comms_log
        self._metrics = metrics or Metrics()
        self._clock = clock
        self._codec = EventCodec()
        self._max_age = timedelta(hours=settings.max_event_age_h)
        self.not_sent_by_reason: Counter[str] = Counter()
        self.too_old = TooOldReport(settings.max_event_age_h)

    def decide(self, records: list[SourceRecord]) -> BatchDecisions:
        """Blocking (a worker thread). Raises only a retriable store error, with nothing written."""
        decisions = BatchDecisions()
        decoded: list[tuple[int, SourceRecord, OrderEvent]] = []
        for index, record in enumerate(records):
            decisions.outcomes.append(Held(""))  # placeholder, replaced below
            try:
                decoded.append((index, record, self._codec.decode(record.value or b"")))
            except DecodeError as exc:
                decisions.outcomes[index] = self._dead(decisions, record, exc.reason, str(exc))
        now = self._clock()
        try:
            decisions = self._write(decisions, decoded, now, isolate=False)
        except _OneEventFailed:  # rolled back: again, each event in a savepoint of its own, the bad one alone
            decisions = self._write(decisions, decoded, now, isolate=True)
        self._count(decisions, decoded, now)
        for n in decisions.not_sent:  # kafka-python's send() can block on metadata: here, not on the event loop
            self._log.not_sent(order_id=n.order_id, customer_id=n.customer_id, reason=n.reason,
                               event_ids=n.event_ids)
        return decisions

    def pending_count(self, due_within_s: float | None = None) -> int:
        """Open windows; with ``due_within_s``, only those due that soon (not throttled for an hour)."""
        due_before = None if due_within_s is None else self._clock() + due_within_s
        with self._store.transaction() as tx:
            return tx.pending_count(due_before)

    def outbox_backlog(self) -> int:
        with self._store.transaction() as tx:
            return tx.outbox.backlog()

    def _write(self, decoded_only: BatchDecisions, decoded: list[tuple[int, SourceRecord, OrderEvent]], now: float,
               isolate: bool) -> BatchDecisions:
        """The batch's transaction. Savepoints cost two statements an event, so they are taken only when a
        first attempt without them met an event that fails (``isolate``)."""
        decisions = BatchDecisions(list(decoded_only.outcomes), list(decoded_only.dead_letters))
        with self._store.transaction() as tx:
            for index, record, event in decoded:
                decisions.outcomes[index] = self._decide_one(tx, decisions, record, event, now, isolate)
            decisions.backlog = tx.outbox.backlog()
        return decisions

    def _decide_one(self, tx: StateTx, decisions: BatchDecisions, record: SourceRecord, event: OrderEvent,
                    now: float, isolate: bool) -> Outcome:
        try:
            if not isolate:
                return self._judge(tx, decisions, record, event, now)
            with tx.savepoint():
                return self._judge(tx, decisions, record, event, now)
        except OrderNotifyError as exc:
            if exc.retriable:
                raise  # the store: the whole batch again, later
            if not isolate:
                raise _OneEventFailed from exc
            return self._internal_error(decisions, record, exc)
        except Exception as exc:  # a bug must cost one dead letter, not the stream
            if not isolate:
                raise _OneEventFailed from exc
            return self._internal_error(decisions, record, exc)

    def _judge(self, tx: StateTx, decisions: BatchDecisions, record: SourceRecord, event: OrderEvent,
               now: float) -> Outcome:
        customer_id = event.customer.customer_id
        if not tx.claim_event(event.event_id, event.order_id, customer_id, now):
            return Suppressed(SuppressReason.DUPLICATE_DELIVERY.value)
        known = tx.facts(event.order_id)
        opted_out = event.event_type in INFORMATIONAL and tx.opted_out(customer_id)
        joins = (event.event_type is EventType.REFUND_ISSUED
                 and refund_joins(event, self._pending_cancellations(tx, event)))
        decision = decide(event, known, opted_out, datetime.fromtimestamp(now, UTC), self._max_age, joins)
        tx.add_facts(event.order_id, facts_of(event), now)
        is_news = isinstance(decision, Hold) or decision == Suppress(SuppressReason.OPTED_OUT)
        if is_news and event.event_type in _SUPERSEDING:  # a delivery is news even to a customer who opted out
            self._drop_superseded(tx, decisions, event, known)
        source = SourceEvent(event.event_id, record.value or b"", record.topic, record.partition, record.offset)
        if isinstance(decision, Suppress):
            decisions.not_sent.append(NotSent(event.order_id, customer_id, decision.reason.value, (event.event_id,)))
            return Suppressed(decision.reason.value)
        if isinstance(decision, Hold):
            due = now + self._settings.coalesce_window_s
            opened = tx.hold(source, event.order_id, decision.group.value, customer_id,
                             event.occurred_at.timestamp(), due) == due
            return Held(decision.group.value, coalesced=not opened)
        assert isinstance(decision, SendNow)
        if tx.outbox.add_ready(decision.notification.ready_entry(), [source], now):
            decisions.queued += 1
        return Queued(decision.notification.template.value)

    def _pending_cancellations(self, tx: StateTx, event: OrderEvent) -> list[OrderEvent]:
        if not tx.has_pending_group(event.order_id, Group.CANCEL.value):
            return []
        return [self._codec.decode(p.event, validate=False) for group, p in tx.pending_of_order(event.order_id)
                if group == Group.CANCEL.value]

    def _drop_superseded(self, tx: StateTx, decisions: BatchDecisions, event: OrderEvent,
                         known: frozenset[str]) -> None:
        """Take out of their windows the order's pending news that ``event`` makes pointless; each is
        recorded as not sent (``superseded``) in the communications log."""
        pending = tx.pending_of_order(event.order_id)
        if not pending:
            return
        by_id = {p.event_id: (group, p) for group, p in pending}
        decoded = [(Group(group), self._codec.decode(p.event, validate=False)) for group, p in pending]
        for moot in superseded_by(event, decoded, known):
            group, _ = by_id[moot.event_id]
            if tx.drop_pending(event.order_id, group, [moot.event_id]):
                decisions.not_sent.append(NotSent(event.order_id, moot.customer.customer_id,
                                                  SuppressReason.SUPERSEDED.value, (moot.event_id,)))
                decisions.superseded += 1

    def _dead(self, decisions: BatchDecisions, record: SourceRecord, reason: str, detail: str) -> DeadLettered:
        decisions.dead_letters.append(DeadLetter(record, reason, detail))
        return DeadLettered(reason, detail)

    def _internal_error(self, decisions: BatchDecisions, record: SourceRecord, exc: Exception) -> DeadLettered:
        log.error("unexpected error deciding %s[%d]@%d", record.topic, record.partition, record.offset, exc_info=exc)
        return self._dead(decisions, record, INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")

    def _count(self, decisions: BatchDecisions, decoded: list[tuple[int, SourceRecord, OrderEvent]],
               now: float) -> None:
        """Once the batch is written: a batch retried while the store was away is counted once."""
        too_old = SuppressReason.TOO_OLD.value
        self.too_old.skipped(
            datetime.fromtimestamp(now, UTC) - event.occurred_at
            for index, _, event in decoded
            if isinstance(outcome := decisions.outcomes[index], Suppressed) and outcome.reason == too_old
        )
        for dead in decisions.dead_letters:
            if dead.reason != INTERNAL_ERROR:
                self._metrics.decode_failures.labels(reason=dead.reason).inc()
        for _, _, event in decoded:
            self._metrics.events_consumed.labels(event_type=event.event_type.value).inc()
        for outcome in decisions.outcomes:
            if isinstance(outcome, Suppressed):
                self._metrics.count_decision(DecisionOutcome.SUPPRESSED, outcome.reason)
                self.not_sent_by_reason[outcome.reason] += 1
            elif isinstance(outcome, Held):
                self._metrics.count_decision(DecisionOutcome.COALESCED if outcome.coalesced else DecisionOutcome.HELD,
                                             outcome.reason)
            # Queued news is counted as sent when the SMTP server accepts it (the dispatcher).
        if decisions.superseded:  # held before, now not sent: counted as the windows' own suppressions are
            for _ in range(decisions.superseded):
                self._metrics.count_decision(DecisionOutcome.SUPPRESSED, SuppressReason.SUPERSEDED.value)
            self.not_sent_by_reason[SuppressReason.SUPERSEDED.value] += decisions.superseded


class _OneEventFailed(Exception):
    """Leaves a batch's first transaction (rolling it back) when one event's decision fails."""
