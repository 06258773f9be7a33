"""The consumer-group member: poll a batch, handle its records, commit what is done.

Records of one order (one key) are handled one after another, in offset
order; different orders run concurrently, bounded by the SMTP connection pool.
Offsets are committed only up to the first record still in flight, after its
e-mail was accepted by the SMTP server or the record was dead-lettered
(at-least-once). Poll and commit run in a worker thread, one at a time, so the
kafka-python consumer is never used by two threads at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError
from kafka.structs import OffsetAndMetadata

from consumers.dead_letters import SourceRecord
from consumers.handler import RecordHandler
from consumers.health import ConsumerHealth
from consumers.lag import lag_by_topic_partition, partition_lag
from consumers.offsets import OffsetTracker
from consumers.outcomes import Outcome
from consumers.watchdog import Watchdog
from ordernotify.config import Settings
from ordernotify.metrics import Metrics

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 200
KEEPALIVE_S = 1.0  # while a batch runs, poll (all paused) this often
LAG_EVERY_S = 5.0  # end_offsets is a broker round trip: not on every poll


def create_kafka_consumer(settings: Settings) -> KafkaConsumer:
    return KafkaConsumer(
        **settings.kafka_client_options(),
        group_id=settings.group_id,
        client_id=f"ordernotify-{settings.group_id}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=max(1000, settings.session_timeout_ms // 4),
        max_poll_records=settings.max_poll_records,
        # Slow batches keep polling (partitions paused, see ConsumerLoop), so the usual deadline holds.
        max_poll_interval_ms=int(settings.max_poll_interval_s * 1000),
        fetch_max_wait_ms=100,
    )


class _Rebalance(ConsumerRebalanceListener):
    """Called inside poll (the worker thread): commit what is done before partitions move away."""

    def __init__(self, loop: ConsumerLoop) -> None:
        self._loop = loop

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._loop.partitions_revoked(revoked)

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._loop.partitions_assigned(assigned)


class ConsumerLoop:
    def __init__(self, settings: Settings, handler: RecordHandler, consumer: KafkaConsumer,
                 shutdown_grace_s: float = 20.0, metrics: Metrics | None = None,
                 health: ConsumerHealth | None = None, watchdog: Watchdog | None = None) -> None:
        self._settings = settings
        self._metrics = metrics or Metrics()
        self._health = health or ConsumerHealth()
        self.watchdog = watchdog or Watchdog(settings.stuck_after_s, self._health, self._metrics)
        self._lag_measured_at = 0.0
        self._handler = handler
        self._consumer = consumer
        self._tracker = OffsetTracker()
        self._shutdown_grace_s = shutdown_grace_s
        self.handled = 0
        self.outcomes: dict[str, int] = defaultdict(int)
        self._batch_running = False
        self._carry: dict[TopicPartition, list[Any]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        self._consumer.subscribe([self._settings.events_topic], listener=_Rebalance(self))
        log.info("consuming %s as group %s", self._settings.events_topic, self._settings.group_id)
        try:
            while not stop.is_set():
                batch, self._carry = (self._carry or await asyncio.to_thread(self._poll)), {}
                if batch:
                    await self._handle_batch(batch, stop)
                    await self._commit()
        finally:
            await self._commit()
            await asyncio.to_thread(self._consumer.close, autocommit=False)
            log.info("consumer stopped after %d records", self.handled)

    def _poll(self, timeout_ms: int = POLL_TIMEOUT_MS) -> dict[TopicPartition, list[Any]]:
        """In the worker thread: poll, and now and then measure lag (the consumer is ours alone here)."""
        batch: dict[TopicPartition, list[Any]] = self._consumer.poll(timeout_ms, self._settings.max_poll_records)
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

    async def _handle_batch(self, batch: dict[TopicPartition, list[Any]], stop: asyncio.Event) -> None:
        chains: dict[tuple[TopicPartition, bytes | None], list[Any]] = defaultdict(list)
        for tp, records in batch.items():
            for record in records:
                self._tracker.started(tp, record.offset)
                chains[(tp, record.key)].append(record)
        self._metrics.in_flight.set(self._tracker.in_flight())
        work: asyncio.Future[list[None]] = asyncio.gather(*(self._handle_chain(r) for r in chains.values()))
        stopping: asyncio.Future[bool] = asyncio.ensure_future(stop.wait())
        self._batch_running = True
        await asyncio.to_thread(self._pause_all)
        try:
            waiters: list[asyncio.Future[Any]] = [work, stopping]
            while True:
                done, _ = await asyncio.wait(waiters, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED)
                if done:
                    break
                await asyncio.to_thread(self._keepalive_poll)
            if work not in done:
                # Finish in-flight sends, but only for so long; what is unfinished is not committed.
                try:
                    await asyncio.wait_for(asyncio.shield(work), self._shutdown_grace_s)
                except TimeoutError:
                    log.warning("shutdown: abandoning %d unfinished records (not committed)", self._tracker.in_flight())
                    work.cancel()
            else:
                work.result()
        finally:
            stopping.cancel()
            self._batch_running = False
            await asyncio.to_thread(self._resume_all)

    # -- staying in the group while a slow batch runs (all in the worker thread) ------------------------
    def _pause_all(self) -> None:
        self._consumer.pause(*self._consumer.assignment())

    def _resume_all(self) -> None:
        self._consumer.resume(*self._consumer.paused())

    def _keepalive_poll(self) -> None:
        """Poll with every partition paused: no records, but the group sees us alive (max.poll.interval)."""
        extra = self._poll(timeout_ms=0)
        for tp, records in extra.items():  # a partition assigned between pause and poll: keep for next batch
            self._carry.setdefault(tp, []).extend(records)

    def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:  # kafka-python also calls this, empty, before the first assignment
            return
        offsets = self._tracker.committable(revoked)
        if offsets:
            try:
                self._consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
            except Exception as exc:  # the next owner re-reads them; event-id dedupe keeps e-mails single
                log.warning("could not commit revoked partitions: %s", exc)
        self._tracker.forget(revoked)
        for tp in list(self._carry):
            if tp in revoked:
                del self._carry[tp]
        log.info("partitions revoked: %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in revoked))

    def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._batch_running and assigned:
            self._consumer.pause(*assigned)
        log.info("partitions assigned: %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))

    async def _handle_chain(self, records: list[Any]) -> None:
        for record in records:
            outcome = await self._handler.handle(SourceRecord.of(record))
            self._count(outcome)
            self._tracker.done(TopicPartition(record.topic, record.partition), record.offset)
            self._metrics.in_flight.dec()

    def _count(self, outcome: Outcome) -> None:
        self.handled += 1
        self.outcomes[type(outcome).__name__.lower()] += 1

    async def _commit(self) -> None:
        offsets = self._tracker.committable()
        if not offsets:
            return
        metadata = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()}
        try:
            await asyncio.to_thread(self._consumer.commit, metadata)
        except CommitFailedError as exc:
            # Evicted from the group (e.g. the broker was unreachable for longer than the poll deadline):
            # the records are redelivered, to us or another member, and their event ids keep e-mails single.
            log.warning("commit failed, records will be redelivered: %s", exc)
            return
        self._metrics.last_commit.set(time.time())
        self.watchdog.committed()
