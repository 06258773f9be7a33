"""Wire the bounce service together from settings: used by ``ordernotify bounces`` and the tests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaProducer

from consumers.dead_letters import KafkaDeadLetters
from consumers.state.outbox import NotificationOwner
from consumers.state.store import StateStore, open_store
from feedback.intake import FeedbackIntake
from feedback.receiver import BounceReceiver
from feedback.suppression_list import SuppressionList
from feedback.webhooks import start_webhooks
from ordernotify.config import Settings
from ordernotify.http_endpoints import start_configured_endpoints
from ordernotify.metrics import Metrics
from ordernotify.reachability import reaching_broker

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class RunningBounces:
    """What a running bounce service exposes to the command and the tests."""

    receiver: BounceReceiver
    suppressions: SuppressionList
    metrics: Metrics
    webhooks_port: int | None


async def run_bounces(settings: Settings, stop: asyncio.Event,
                      on_start: Callable[[RunningBounces], None] | None = None) -> None:
    """Receive bounces until ``stop`` is set."""
    metrics = Metrics()
    async with AsyncExitStack() as stack:
        endpoints = start_configured_endpoints(settings, metrics.registry)
        if endpoints is not None:
            stack.callback(endpoints.stop)
        with reaching_broker(settings):
            producer = await asyncio.to_thread(KafkaProducer, **settings.kafka_producer_options(), acks="all",
                                               client_id="ordernotify-bounces")
        stack.push_async_callback(asyncio.to_thread, producer.close, 10)
        suppressions = SuppressionList(settings, producer)
        await asyncio.to_thread(suppressions.load)
        store = await asyncio.to_thread(_open_store_if_there, settings)
        if store is not None:
            stack.push_async_callback(asyncio.to_thread, store.close)
        intake = FeedbackIntake(settings, suppressions,
                                KafkaDeadLetters(producer, settings.dlq_topic, settings.produce_timeout_s),
                                metrics, _owner_lookup(store) if store is not None else None)
        receiver = BounceReceiver(settings, intake, metrics)
        await receiver.start()
        stack.push_async_callback(receiver.stop)
        webhooks_port = await _start_webhooks(settings, receiver, stack, metrics)
        if on_start is not None:
            on_start(RunningBounces(receiver, suppressions, metrics, webhooks_port))
        await stop.wait()
        log.info("stopping: no new bounces taken")


def _open_store_if_there(settings: Settings) -> StateStore | None:
    """The consumers' state store, to tie a bounce to its order and customer. A SQLite file that is not
    there is not created: bounces are then applied without them."""
    if settings.state_url.startswith("sqlite:///") and not Path(settings.state_url[len("sqlite:///"):]).is_file():
        log.warning("no state store at %s: bounces are applied without their order and customer (see --state-url)",
                    settings.state_url)
        return None
    return open_store(settings.state_url)


def _owner_lookup(store: StateStore) -> Callable[[str], NotificationOwner | None]:
    def owner_of(notification_id: str) -> NotificationOwner | None:
        with store.transaction() as tx:
            return tx.outbox.owner(notification_id)

    return owner_of


async def _start_webhooks(settings: Settings, receiver: BounceReceiver, stack: AsyncExitStack,
                          metrics: Metrics) -> int | None:
    """The provider webhooks (:mod:`feedback.webhooks`) on ``--webhook-port``, in this process; they count what
    they take and refuse themselves, and hand each bounce to the same intake as the LMTP messages."""
    if not settings.webhook_port:
        return None
    runner = await start_webhooks(settings, receiver.handler.take_feedback, metrics=metrics)
    stack.push_async_callback(runner.cleanup)
    return settings.webhook_port
