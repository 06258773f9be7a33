"""The consumer-group member: poll a batch, decide it in one transaction, publish its dead letters, commit.

One poll batch is one unit: its decisions are written to the state store and outbox in one
transaction (:class:`~consumers.decide.decider.Decider`), the dead letters of its bad records are
acknowledged by the broker, and only then are its offsets committed and the dispatcher woken. What
Kafka held is then in the outbox; sending is the delivering side's business, so a slow SMTP server
never holds partitions back. When the outbox backlog passes ``--outbox-max-backlog``, the partitions
are paused (still polling, to stay in the group) until it drains to half of it.
Poll and commit run in a worker thread, one at a time, so the kafka-python consumer is never used by
two threads at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError, RebalanceInProgressError
from kafka.structs import OffsetAndMetadata

from consumers.dead_letters import DeadLetters, SourceRecord
from consumers.decide.decider import BatchDecisions, DeadLetter, Decider
from consumers.decide.lag import lag_by_topic_partition, partition_lag
from consumers.decide.watchdog import Watchdog
from consumers.health import ConsumerHealth
from consumers.outcomes import Outcome
from ordernotify.config import Settings
from ordernotify.errors import DependencyUnreachable
from ordernotify.kafka_closing import close_consumer
from ordernotify.metrics import DecisionOutcome, Metrics
from ordernotify.reachability import POLL_BACKOFF, WAITED_OUT, poll_or_unreachable
from ordernotify.retry import retry_async

log = logging.getLogger(__name__)
_T = TypeVar("_T")

POLL_TIMEOUT_MS = 500
BACKLOG_CHECK_S = 0.5  # while paused for the outbox backlog: poll (all paused) and look again this often
LAG_EVERY_S = 5.0  # end_offsets is a broker round trip: not on every poll

def create_kafka_consumer(settings: Settings) -> KafkaConsumer:
    return KafkaConsumer(
        **settings.kafka_consumer_options(),
        group_id=settings.group_id,
        client_id=f"ordernotify-{settings.group_id}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=max(1000, settings.session_timeout_ms // 4),
        max_poll_records=settings.max_poll_records,
        # A batch is decided in milliseconds; only a long store or dead-letter-topic outage delays the next
        # poll past this, and then leaving the group (the records go to a member that can work) is right.
        max_poll_interval_ms=int(settings.max_poll_interval_s * 1000),
        fetch_max_wait_ms=100,
    )


class _Rebalance(ConsumerRebalanceListener):
    """Called inside poll (the worker thread). Every batch is committed before the next poll, so nothing is
    left to commit when partitions move away."""

    def __init__(self, loop: ConsumerLoop) -> None:
        self._loop = loop

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._loop.partitions_revoked(revoked)

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._loop.partitions_assigned(assigned)


class ConsumerLoop:
    def __init__(self, settings: Settings, decider: Decider, consumer: KafkaConsumer, dead_letters: DeadLetters,
                 on_decided: Callable[[], None] = lambda: None, metrics: Metrics | None = None,
                 health: ConsumerHealth | None = None, watchdog: Watchdog | None = None) -> None:
        """``on_decided``: called after each committed batch that queued e-mails (wakes the dispatcher)."""
        self._settings = settings
        self._metrics = metrics or Metrics()
        self._health = health or ConsumerHealth()
        self.watchdog = watchdog or Watchdog(settings.stuck_after_s, self._health, self._metrics)
        self._lag_measured_at = 0.0
        self._decider = decider
        self._consumer = consumer
        self._dead_letters = dead_letters
        self._on_decided = on_decided
        self.handled = 0
        self.outcomes: dict[str, int] = defaultdict(int)
        self._paused = False
        self._carry: dict[TopicPartition, list[Any]] = {}
        self._using: asyncio.Future[Any] | None = None

    async def run(self, stop: asyncio.Event) -> None:
        self._consumer.subscribe([self._settings.events_topic], listener=_Rebalance(self))
        log.info("consuming %s as group %s", self._settings.events_topic, self._settings.group_id)
        try:
            while not stop.is_set():
                batch, self._carry = (self._carry or await self._poll_through_outages(POLL_TIMEOUT_MS, stop)), {}
                if batch and not await self._handle_batch(batch, stop):
                    break  # stopping in the middle of an outage: nothing of this batch is committed
        finally:
            # Closed only once no thread of ours is inside the consumer, and after its network thread stopped
            # (ordernotify/kafka_closing.py): closing it under a running poll or selector task is what printed
            # kafka-python's "Invalid file descriptor" traceback on a clean stop.
            await self._out_of_consumer()
            await asyncio.to_thread(close_consumer, self._consumer, autocommit=False)
            log.info("consumer stopped after %d records", self.handled)

    async def _in_consumer(self, call: Callable[..., _T], *args: Any) -> _T:
        """Every use of the kafka-python consumer: in a worker thread, one at a time. A cancelled caller does
        not end its call (a thread cannot be interrupted): the next use, and the close, wait for it."""
        await self._out_of_consumer()
        self._using = asyncio.ensure_future(asyncio.to_thread(call, *args))
        return await asyncio.shield(self._using)

    async def _out_of_consumer(self) -> None:
        """Until no worker thread is inside the consumer (a poll ends within its timeout, a commit within the
        request timeout). Its outcome is its caller's, which ``shield`` tells even when that caller was
        cancelled."""
        using, self._using = self._using, None
        if using is not None and not using.done():
            await asyncio.wait([using])

    async def _poll_through_outages(self, timeout_ms: int, stop: asyncio.Event) -> dict[TopicPartition, list[Any]]:
        """The next records; while no broker answers, poll again after a backoff until one does (nothing
        polled, an empty batch, once ``stop`` is set meanwhile)."""
        try:
            return await retry_async(lambda: self._in_consumer(self._poll, timeout_ms), "polling Kafka",
                                     POLL_BACKOFF, stop=stop)
        except DependencyUnreachable:
            if stop.is_set():
                return {}
            raise

    def _poll(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        """In the worker thread: poll, and now and then measure lag (the consumer is ours alone here)."""
        batch = poll_or_unreachable(self._consumer, timeout_ms, self._settings.max_poll_records,
                                    self._settings.bootstrap_servers)
        assignment = self._consumer.assignment()
        self._health.polled(bool(assignment))
        self._metrics.ready.set(1 if self._health.report().ready else 0)
        if time.monotonic() - self._lag_measured_at > LAG_EVERY_S:
            self._lag_measured_at = time.monotonic()
            try:
                lag = lag_by_topic_partition(partition_lag(self._consumer, assignment))
                self._metrics.set_lag(lag)
                self.watchdog.lag_measured(sum(lag.values()))
            except Exception as exc:  # lag is for dashboards; it must never stop consumption
                log.debug("lag not measured: %s", exc)
        return batch

    async def _handle_batch(self, batch: dict[TopicPartition, list[Any]], stop: asyncio.Event) -> bool:
        """Decide, dead-letter, commit; False if ``stop`` came while an outage held the batch back.

        The dead letters are published after the decisions' transaction: a crash between the two
        redelivers the batch, whose decided events are then duplicates and whose bad records are
        dead-lettered again. Nothing is lost either way."""
        records = [SourceRecord.of(record) for records in batch.values() for record in records]
        try:
            decisions = await retry_async(lambda: asyncio.to_thread(self._decider.decide, records),
                                          "deciding a batch", on_error=self._health.store_reached, stop=stop)
            await retry_async(lambda: asyncio.to_thread(self._publish_dead_letters, decisions.dead_letters),
                              "publishing dead letters", on_error=self._health.dead_letters_reached, stop=stop)
        except Exception as exc:
            if stop.is_set():
                log.warning("stopping: a batch of %d records is left uncommitted (%s)", len(records), exc)
                return False
            raise
        self._count(decisions)
        self._tell(decisions)
        await self._commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
        if decisions.backlog > self._settings.outbox_max_backlog:
            await self._wait_for_backlog(decisions.backlog, stop)
        return True

    def _publish_dead_letters(self, dead_letters: list[DeadLetter]) -> None:
        """Each acknowledged by the broker before the batch's offsets are committed."""
        for dead in dead_letters:
            self._dead_letters.publish(dead.record, dead.reason, dead.detail)

    def _tell(self, decisions: BatchDecisions) -> None:
        for dead in decisions.dead_letters:
            self._metrics.count_dead_letter(dead.reason)
            self._metrics.count_decision(DecisionOutcome.DEAD_LETTERED, dead.reason)
        if decisions.queued:
            self._on_decided()

    async def _wait_for_backlog(self, backlog: int, stop: asyncio.Event) -> None:
        """Pause every partition until the dispatcher has worked the outbox down to half the bound."""
        log.info("outbox backlog %d is over %d: reading paused until it drains", backlog,
                 self._settings.outbox_max_backlog)
        self._paused = True
        await self._in_consumer(self._pause_all)
        try:
            while not stop.is_set() and backlog > self._settings.outbox_max_backlog // 2:
                await asyncio.sleep(BACKLOG_CHECK_S)
                await self._keepalive_poll(stop)
                before = backlog
                try:
                    backlog = await retry_async(lambda: asyncio.to_thread(self._decider.outbox_backlog),
                                                "reading the outbox backlog", on_error=self._health.store_reached,
                                                stop=stop)
                except Exception:
                    if stop.is_set():
                        return
                    raise
                if backlog < before:  # the outbox drains: waiting here is progress, not a stuck consumer
                    self.watchdog.committed()
        finally:
            self._paused = False
            await self._in_consumer(self._resume_all)

    # -- staying in the group while paused ---------------------------------------------------------------------
    def _pause_all(self) -> None:
        self._consumer.pause(*self._consumer.assignment())

    def _resume_all(self) -> None:
        self._consumer.resume(*self._consumer.paused())

    async def _keepalive_poll(self, stop: asyncio.Event) -> None:
        """Poll with every partition paused: no records, but the group sees us alive (max.poll.interval)."""
        extra = await self._poll_through_outages(0, stop)
        for tp, records in extra.items():  # a partition assigned between pause and poll: keep for next batch
            self._carry.setdefault(tp, []).extend(records)

    def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:  # kafka-python also calls this, empty, before the first assignment
            return
        for tp in list(self._carry):
            if tp in revoked:
                del self._carry[tp]
        log.info("partitions revoked: %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in revoked))

    def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._paused and assigned:
            self._consumer.pause(*assigned)
        log.info("partitions assigned: %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))

    def _count(self, decisions: BatchDecisions) -> None:
        for outcome in decisions.outcomes:
            self._count_one(outcome)

    def _count_one(self, outcome: Outcome) -> None:
        self.handled += 1
        self.outcomes[type(outcome).__name__.lower()] += 1

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        metadata = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()}
        try:
            await self._in_consumer(self._consumer.commit, metadata)
        except (CommitFailedError, RebalanceInProgressError, *WAITED_OUT) as exc:
            # Evicted from the group (e.g. the broker was unreachable for longer than the poll deadline), or the
            # broker went away during the commit (it gives up after the request timeout): the records are
            # redelivered, to us or another member, and their event ids keep e-mails single; the next batch's
            # commit covers them if we keep the partitions. Never a reason to stop consuming.
            log.warning("commit failed, records may be redelivered: %s", exc)
            return
        self._metrics.last_commit.set(time.time())
        self.watchdog.committed()
