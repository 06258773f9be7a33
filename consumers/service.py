"""Wire the consumer's parts together from settings: used by ``consume``, ``demo`` and the tests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from kafka import KafkaProducer

from consumers.comms_log import CommsLog
from consumers.dead_letters import KafkaDeadLetters
from consumers.decide.consumer_loop import ConsumerLoop, create_kafka_consumer
from consumers.decide.decider import Decider
from consumers.decide.preferences_reader import PreferencesReader
from consumers.decide.suppressions_reader import SuppressionsReader
from consumers.deliver.composing import start_composer
from consumers.deliver.dispatcher import Dispatcher
from consumers.deliver.smtp_sender import SmtpSender
from consumers.health import ConsumerHealth
from consumers.state.store import open_store
from ordernotify.config import Settings
from ordernotify.http_endpoints import start_configured_endpoints
from ordernotify.metrics import Metrics
from ordernotify.reachability import reaching_broker

log = logging.getLogger(__name__)

# The consumer's producer writes one communications-log record per e-mail, which nobody waits for. At 5 ms
# each record went out in a produce request of its own, and kafka-python's sender thread cost ~1.1 ms of CPU
# per record at 250 records/s; at 100 ms, ~0.4 ms (bench/stages.py, "comms log publish, paced"; 500 ms with
# 256 KiB batches measured no better, 394 µs). Dead letters, which are waited for, are flushed at once
# (consumers/dead_letters.py): no linger for them.
RECORDS_LINGER_MS = 100
# kafka-python's send() blocks up to this long without the topic's metadata (default 60 s): a dead letter then
# fails fast and is retried with backoff (readiness hears of it), instead of holding its thread for a minute.
PRODUCER_MAX_BLOCK_MS = 5000


@dataclass(frozen=True)
class RunningConsumer:
    """What a running consumer exposes to the demo and the tests (counters, open windows, the outbox)."""

    loop: ConsumerLoop
    decider: Decider
    dispatcher: Dispatcher
    preferences: PreferencesReader
    metrics: Metrics
    health: ConsumerHealth
    suppressions: SuppressionsReader

    def pending_count(self, due_within_s: float | None = None) -> int:
        """Open windows; with ``due_within_s``, only those due that soon (not throttled for an hour)."""
        return self.decider.pending_count(due_within_s)

    def outbox_backlog(self) -> int:
        return self.decider.outbox_backlog()

    def not_sent_by_reason(self) -> dict[str, int]:
        """News not e-mailed, by reason (duplicate deliveries aside), on both sides."""
        return dict(self.decider.not_sent_by_reason + self.dispatcher.not_sent_by_reason)


async def run_consumer(
    settings: Settings, stop: asyncio.Event, on_start: Callable[[RunningConsumer], None] | None = None,
    on_stuck: Callable[[], None] | None = None,
) -> RunningConsumer:
    """Run one consumer until ``stop`` is set; ``on_start`` gets its parts once it runs.

    The watchdog sets ``stop`` itself when the consumer is stuck (``running.loop.watchdog.stuck``),
    after calling ``on_stuck``."""
    metrics, health = Metrics(), ConsumerHealth()
    endpoints = start_configured_endpoints(settings, metrics.registry, health.report)
    try:
        return await _run(settings, stop, on_start, on_stuck, metrics, health)
    finally:
        if endpoints is not None:
            endpoints.stop()


async def _run(settings: Settings, stop: asyncio.Event, on_start: Callable[[RunningConsumer], None] | None,
               on_stuck: Callable[[], None] | None, metrics: Metrics, health: ConsumerHealth) -> RunningConsumer:
    store = await asyncio.to_thread(open_store, settings.state_url)
    try:
        with reaching_broker(settings):
            producer = await asyncio.to_thread(
                KafkaProducer, **settings.kafka_producer_options(), acks="all", linger_ms=RECORDS_LINGER_MS,
                client_id="ordernotify-consumer", max_block_ms=PRODUCER_MAX_BLOCK_MS,
            )
    except BaseException:
        await asyncio.to_thread(store.close)
        raise
    comms_log = CommsLog(producer, settings.sent_topic)
    dead_letters = KafkaDeadLetters(producer, settings.dlq_topic)
    composer = start_composer(settings)
    sender = SmtpSender(settings)
    dispatcher = Dispatcher(settings, store, composer, sender, dead_letters, comms_log, metrics=metrics,
                            health=health)
    decider = Decider(settings, store, comms_log, metrics=metrics)
    try:
        await composer.start()
        consumer = await asyncio.to_thread(create_kafka_consumer, settings)
    except BaseException:
        composer.close()
        raise
    running = RunningConsumer(
        ConsumerLoop(settings, decider, consumer, dead_letters, on_decided=dispatcher.wake, metrics=metrics,
                     health=health),
        decider,
        dispatcher,
        PreferencesReader(settings, store, health=health).start(),
        metrics,
        health,
        SuppressionsReader(settings, store, health=health).start(),
    )
    delivering = asyncio.create_task(dispatcher.run(stop))
    delivering.add_done_callback(lambda task: _stop_if_failed(task, stop))
    watchdog = asyncio.create_task(running.loop.watchdog.run(stop, on_stuck))
    try:
        if on_start is not None:
            on_start(running)
        await running.loop.run(stop)
    finally:
        stop.set()
        await watchdog
        try:
            await delivering  # in-flight sends get their grace, the rest is let go for the next consumer
        finally:
            running.preferences.stop()
            running.suppressions.stop()
            dispatcher.close()
            await sender.close()
            await asyncio.to_thread(comms_log.close)
            await asyncio.to_thread(producer.close, 10)
            await asyncio.to_thread(store.close)
    return running


def _stop_if_failed(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Deciding without delivering would only fill the outbox: a dispatcher that died stops the consumer, and
    the error leaves ``run_consumer`` (the ``consume`` command exits non-zero for a restart)."""
    if not task.cancelled() and task.exception() is not None and not stop.is_set():
        log.error("the dispatcher stopped: %s; stopping the consumer", task.exception())
        stop.set()
