"""``ordernotify relay``: turn the JSON events of a staging topic into validated events, none lost, until SIGTERM
or Ctrl-C.

For Debezium's outbox event router (deploy/debezium/): each record of --relay-topic holds one event as JSON, the
shape `ordernotify emit` reads. A valid event is sent to the events topic; an invalid one goes to the dead-letter
topic with its bytes and the reason (`ordernotify dlq list`). A batch's offsets are committed only once the broker
acknowledged all of it: a relay stopped or killed in between sends that batch again, and the consumers drop the
copies by event id. /metrics, /healthz and /readyz are on --metrics-port.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
from typing import Any

from kafka import KafkaProducer

from cli.exit_codes import ExitCode
from cli.signals import run_until_signalled
from consumers.dead_letters import KafkaDeadLetters, SourceRecord
from ordernotify.config import Settings
from ordernotify.http_endpoints import ReadinessReport, start_configured_endpoints
from ordernotify.metrics import Metrics
from ordernotify.reachability import reaching_broker
from producers.event_producer import OrderEventProducer
from producers.relay import BatchRelay, OutboxRelay, create_relay_consumer

log = logging.getLogger(__name__)

# Dead letters are waited for one by one (consumers/dead_letters.py); a topic whose metadata does not come fails
# within this and is retried with backoff, instead of holding the batch for kafka-python's default minute.
DEAD_LETTER_MAX_BLOCK_MS = 5000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """All its settings are the shared ones (see the groups below)."""


class _ConsumerDeadLetters:
    """The consumers' dead-letter format for the relay's records: same headers, same ``dlq`` commands."""

    def __init__(self, dead_letters: KafkaDeadLetters) -> None:
        self._dead_letters = dead_letters

    def publish(self, record: Any, reason: str, detail: str) -> None:
        self._dead_letters.publish(SourceRecord.of(record), reason, detail)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """0 after SIGTERM/SIGINT: the batch in flight is relayed and committed first."""
    run_until_signalled(lambda stop: relay(settings, stop))
    return ExitCode.OK


async def relay(settings: Settings, stop: asyncio.Event) -> None:
    """Relay until ``stop`` is set (or the relay fails: its error leaves here)."""
    metrics = Metrics()
    running: list[OutboxRelay] = []  # the relay, once its consumer exists (what /readyz asks)
    # first, before any Kafka client: a port another service holds stops the command with nothing to close
    endpoints = start_configured_endpoints(
        settings, metrics.registry,
        lambda: running[0].readiness() if running else ReadinessReport({"group_joined": False}))
    try:
        with reaching_broker(settings):
            dead_letter_producer = await asyncio.to_thread(
                KafkaProducer, **settings.kafka_producer_options(), acks="all", client_id="ordernotify-relay",
                max_block_ms=DEAD_LETTER_MAX_BLOCK_MS)
        try:
            producer = await asyncio.to_thread(OrderEventProducer, settings, metrics=metrics)
            try:
                with reaching_broker(settings):
                    consumer = await asyncio.to_thread(create_relay_consumer, settings)
                dead_letters = _ConsumerDeadLetters(KafkaDeadLetters(dead_letter_producer, settings.dlq_topic,
                                                                     settings.produce_timeout_s))
                running.append(OutboxRelay(consumer, settings.relay_topic,
                                           BatchRelay(producer, dead_letters, metrics), settings.max_poll_records,
                                           metrics, bootstrap_servers=settings.bootstrap_servers))
                await _until_stopped(running[0], stop)
            finally:
                await asyncio.to_thread(producer.close)
        finally:
            await asyncio.to_thread(dead_letter_producer.close, settings.produce_timeout_s)
    finally:
        if endpoints is not None:
            endpoints.stop()


async def _until_stopped(outbox_relay: OutboxRelay, stop: asyncio.Event) -> None:
    """The relay runs in a worker thread (it blocks in poll and in waiting for acknowledgements); ``stop`` is
    handed over to it, and it ends after committing the batch in flight."""
    thread_stop = threading.Event()
    running = asyncio.ensure_future(asyncio.to_thread(outbox_relay.run, thread_stop))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([running, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        thread_stop.set()
        stopping.cancel()
        await asyncio.wait([running])
    running.result()  # the relay's own failure, if it stopped by itself
