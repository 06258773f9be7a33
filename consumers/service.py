"""Wire the consumer's parts together from settings: used by ``consume``, ``demo`` and the tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from kafka import KafkaProducer

from consumers.comms_log import CommsLog
from consumers.composing import ProcessComposer
from consumers.consumer_loop import ConsumerLoop, create_kafka_consumer
from consumers.dead_letters import KafkaDeadLetters
from consumers.handler import RecordHandler
from consumers.health import ConsumerHealth
from consumers.policy.notifier import Notifier
from consumers.preferences_reader import PreferencesReader
from consumers.rendering import Renderer
from consumers.smtp_sender import SmtpSender
from consumers.state.store import open_store
from ordernotify.config import Settings
from ordernotify.http_endpoints import start_configured_endpoints
from ordernotify.metrics import Metrics

log = logging.getLogger(__name__)

# The consumer's producer writes one communications-log record per e-mail, which nobody waits for. At 5 ms
# each record went out in a produce request of its own, and kafka-python's sender thread cost ~1.1 ms of CPU
# per record at 250 records/s; at 100 ms, ~0.4 ms (bench/stages.py, "comms log publish, paced"). Dead
# letters, which are waited for, are flushed at once (consumers/dead_letters.py): no linger for them.
RECORDS_LINGER_MS = 100


@dataclass(frozen=True)
class RunningConsumer:
    """What a running consumer exposes to the demo and the tests (counters, pending windows)."""

    loop: ConsumerLoop
    notifier: Notifier
    preferences: PreferencesReader
    metrics: Metrics
    health: ConsumerHealth


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
    producer = await asyncio.to_thread(
        KafkaProducer, **settings.kafka_client_options(), acks="all", linger_ms=RECORDS_LINGER_MS,
        client_id="ordernotify-consumer",
    )
    sender = SmtpSender(settings, metrics=metrics, health=health)
    dead_letters = KafkaDeadLetters(producer, settings.dlq_topic)
    composer = ProcessComposer(settings, settings.render_processes) if settings.render_processes else None
    notifier = Notifier(settings, store, Renderer(settings), sender, CommsLog(producer, settings.sent_topic),
                        dead_letters, metrics=metrics, composer=composer, health=health)
    if composer is not None:
        await composer.start()
    consumer = await asyncio.to_thread(create_kafka_consumer, settings)
    handler = RecordHandler(notifier, dead_letters, metrics=metrics, health=health,
                            concurrency=settings.events_in_flight)
    running = RunningConsumer(
        ConsumerLoop(settings, handler, consumer, metrics=metrics, health=health),
        notifier,
        PreferencesReader(settings, store).start(),
        metrics,
        health,
    )
    timers: asyncio.Task[None] | None = None
    watchdog = asyncio.create_task(running.loop.watchdog.run(stop, on_stuck))
    try:
        await notifier.resend_unsent(at_start=True)
        timers = asyncio.create_task(notifier.run_timers(stop))
        if on_start is not None:
            on_start(running)
        await running.loop.run(stop)
    finally:
        stop.set()
        await watchdog
        if timers is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await timers
        running.preferences.stop()
        notifier.close()
        await sender.close()
        await asyncio.to_thread(producer.close, 10)
        await asyncio.to_thread(store.close)
    return running
