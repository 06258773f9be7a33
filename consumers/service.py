"""Wire the consumer's parts together from settings: used by ``consume``, ``demo`` and the tests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from kafka import KafkaProducer

from consumers.consumer_loop import ConsumerLoop, create_kafka_consumer
from consumers.dead_letters import KafkaDeadLetters
from consumers.handler import RecordHandler
from consumers.rendering import Renderer
from consumers.smtp_sender import SmtpSender
from ordernotify.config import Settings

log = logging.getLogger(__name__)


async def run_consumer(
    settings: Settings, stop: asyncio.Event, on_start: Callable[[ConsumerLoop], None] | None = None
) -> ConsumerLoop:
    """Run one consumer until ``stop`` is set; ``on_start`` gets the loop (its counters) once it runs."""
    dlq_producer = await asyncio.to_thread(
        KafkaProducer, **settings.kafka_client_options(), acks="all", client_id="ordernotify-dlq"
    )
    sender = SmtpSender(settings)
    handler = RecordHandler(settings, Renderer(settings), sender, KafkaDeadLetters(dlq_producer, settings.dlq_topic))
    consumer = await asyncio.to_thread(create_kafka_consumer, settings)
    loop = ConsumerLoop(settings, handler, consumer)
    if on_start is not None:
        on_start(loop)
    try:
        await loop.run(stop)
    finally:
        await sender.close()
        await asyncio.to_thread(dlq_producer.close, 10)
    return loop
