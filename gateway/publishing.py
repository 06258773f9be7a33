"""Events to the events topic, answered only once the broker acknowledged them (``acks=all``, idempotent).

:class:`EventPublisher` wraps :class:`producers.event_producer.OrderEventProducer` for an event loop: records are
handed to the Kafka client on the loop itself while the client holds the topic's partitions (then a send only
appends to a batch), else in a small thread pool (a send can block while the client fetches metadata or replaces
itself after a broker restart, and the loop must go on answering). The acknowledgements come back through the
client's callbacks (:mod:`gateway.acknowledgements`), so a thousand requests waiting for theirs hold no thread.
Whatever is not acknowledged within ``--gateway-answer-timeout-s`` raises :class:`BrokerUnavailable`: the sender
gets 503 and sends it again. A record handed over before that may still reach the topic later; its copy carries
the same event id and is dropped by the consumers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from gateway.acknowledgements import AcknowledgementRelay
from gateway.exceptions import BrokerUnavailable, InvalidEvent
from ordernotify.config import Settings
from ordernotify.metrics import Metrics
from producers.event_producer import DeliveryHandle, DeliveryReport, OrderEventProducer
from producers.exceptions import DeliveryFailed, EventRefused, WouldBlock
from schemas.events import OrderEvent
from schemas.exceptions import EventValidationError
from schemas.validation import validate_event

log = logging.getLogger(__name__)

SEND_THREADS = 4
METADATA_RETRY_S = 2.0
# How long a batch waits for more records. Every request waits for its record's acknowledgement, so the linger is
# part of each answer time: 2 ms instead of the producer's 5 ms nearly halves the answer time with 8 clients (and so
# doubles their rate), and still batches the records of concurrent requests (no more CPU per webhook than 5 ms;
# 0 ms costs more: a produce request for nearly every record).
LINGER_MS = 2


class EventPublisher:
    """Publishes a request's events and waits for the broker, on the running event loop."""

    def __init__(self, settings: Settings, producer: OrderEventProducer, metrics: Metrics) -> None:
        self._producer = producer
        self._topic = settings.events_topic
        self._timeout_s = settings.gateway_answer_timeout_s
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="gateway-send")
        self._topic_known = False
        self._metadata_task: asyncio.Task[None] | None = None
        self._relay: AcknowledgementRelay | None = None

    @classmethod
    def connect(cls, settings: Settings, metrics: Metrics) -> EventPublisher:
        """A publisher with a producer of its own; blocks while the client reaches the broker (DeliveryFailed caused
        by the bootstrap failure when it cannot, which ``ordernotify`` reports in one line)."""
        return cls(settings, OrderEventProducer(settings, metrics=metrics, linger_ms=LINGER_MS), metrics)

    @property
    def topic_known(self) -> bool:
        """Whether the producer holds the events topic's partitions (what ``/readyz`` asks)."""
        return self._topic_known

    def start(self) -> None:
        """Fetch the topic's metadata in the background until the broker gives it (then /readyz says ready)."""
        self._metadata_task = asyncio.get_running_loop().create_task(self._fetch_metadata())

    async def _fetch_metadata(self) -> None:
        loop = asyncio.get_running_loop()
        told = False
        while True:
            try:
                partitions = await loop.run_in_executor(self._executor, self._producer.partitions_for, self._topic)
            except DeliveryFailed as exc:
                if not told:
                    log.warning("not ready: %s; trying again every %g s", exc, METADATA_RETRY_S)
                    told = True
                await asyncio.sleep(METADATA_RETRY_S)
                continue
            self._topic_known = True
            log.info("ready: %s has %d partitions", self._topic, len(partitions))
            return

    async def publish(self, events: list[OrderEvent], within_s: float | None = None) -> list[DeliveryReport]:
        """Every event acknowledged, in order of the list; :class:`BrokerUnavailable` if not all of them were within
        ``within_s`` (what is left of the request's answer time; at most the answer timeout), :class:`InvalidEvent`
        if one breaks the contract (then none is sent)."""
        timeout_s = self._timeout_s if within_s is None else max(0.0, min(within_s, self._timeout_s))
        loop = asyncio.get_running_loop()
        relay = self._relay
        if relay is None or relay.loop is not loop:
            relay = self._relay = AcknowledgementRelay(loop)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):
                handles = self._send_all_now(events)
                if handles is None:
                    handles = await loop.run_in_executor(self._executor, self._send_all, events)
                if len(handles) == 1:
                    return [await relay.acknowledgement(handles[0])]
                return list(await asyncio.gather(*(relay.acknowledgement(h) for h in handles)))
        except TimeoutError:
            raise BrokerUnavailable(f"the Kafka broker did not acknowledge within {timeout_s:g} s") from None
        except DeliveryFailed as exc:
            raise BrokerUnavailable(f"the Kafka broker did not take the events: {exc}") from exc
        except EventRefused as exc:  # the broker refused one for good (too large for the topic): until an operator
            log.error("%s", exc)  # raises the topic's limit, the platform keeps the delivery and retries it
            raise BrokerUnavailable(f"the Kafka broker refused the events: {exc.problem}") from exc
        finally:
            self._metrics.gateway_produce_latency.observe(time.perf_counter() - started)

    def _send_all_now(self, events: list[OrderEvent]) -> list[DeliveryHandle] | None:
        """:meth:`_send_all` on the loop itself, or None if a send would wait (then the caller uses a thread).
        Should that happen after the first of several events (the client marked stale in between), that one
        goes again from the thread: the same event id, which the consumers drop."""
        if not self._producer.sends_without_waiting(self._topic):
            return None
        try:
            return self._send_all(events, may_block=False)
        except WouldBlock:
            return None

    def _send_all(self, events: list[OrderEvent], may_block: bool = True) -> list[DeliveryHandle]:
        try:
            for event in events:  # every event checked before the first is sent: all or none
                validate_event(event)
        except EventValidationError as exc:
            raise InvalidEvent(exc.field, exc.problem) from exc
        try:
            return [self._producer.send(event, validated=True, may_block=may_block) for event in events]
        except EventRefused as exc:  # only an encoded event over the size limit gets here
            raise InvalidEvent(exc.field, exc.problem) from exc

    async def close(self) -> None:
        """Wait for what is in flight (up to the answer timeout), then release the client and the threads."""
        if self._metadata_task is not None:
            self._metadata_task.cancel()
        try:
            await asyncio.to_thread(self._producer.close, self._timeout_s)
        except DeliveryFailed as exc:  # those senders were answered 503 and send again
            log.warning("closing: %s", exc)
        self._executor.shutdown(wait=False, cancel_futures=True)

