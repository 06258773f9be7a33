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

from kafka import KafkaConsumer, TopicPartition
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
        # A batch may wait out the SMTP retry budget; the group must not evict us meanwhile.
        max_poll_interval_ms=int((settings.smtp_retry_budget_s + 120) * 1000),
        fetch_max_wait_ms=100,
    )


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

    async def run(self, stop: asyncio.Event) -> None:
        self._consumer.subscribe([self._settings.events_topic])
        log.info("consuming %s as group %s", self._settings.events_topic, self._settings.group_id)
        try:
            while not stop.is_set():
                batch = await asyncio.to_thread(self._poll)
                if batch:
                    await self._handle_batch(batch, stop)
                    await self._commit()
        finally:
            await self._commit()
            await asyncio.to_thread(self._consumer.close, autocommit=False)
            log.info("consumer stopped after %d records", self.handled)

    def _poll(self) -> dict[TopicPartition, list[Any]]:
        """In the worker thread: poll, and now and then measure lag (the consumer is ours alone here)."""
        batch: dict[TopicPartition, list[Any]] = self._consumer.poll(POLL_TIMEOUT_MS, self._settings.max_poll_records)
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
        try:
            waiters: list[asyncio.Future[Any]] = [work, stopping]
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
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
        await asyncio.to_thread(self._consumer.commit, metadata)
        self._metrics.last_commit.set(time.time())
        self.watchdog.committed()
