"""The event streams the benchmark feeds the consumers: from ``producers.simulator``, produced to Kafka.

Throughput runs use a policy-neutral stream (ORDER_PLACED only: each one is e-mailed at once, never
held in a window), so that e-mails = events; the mixed stream (whole lifecycles) is reported apart.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from kafka import KafkaProducer

from ordernotify.config import Settings
from producers.event_producer import OrderEventProducer
from producers.record_encoding import EVENT_CONTENT_TYPE
from producers.simulator import simulate_orders
from schemas.codec import EventCodec
from schemas.events import EventType, OrderEvent


def placed_events(n: int, seed: int = 7) -> list[OrderEvent]:
    """``n`` ORDER_PLACED events of ``n`` different orders (several locales and currencies)."""
    events = [e for e in simulate_orders(n, seed=seed) if e.event_type is EventType.ORDER_PLACED]
    return events[:n]


def mixed_events(n_orders: int, seed: int = 11) -> list[OrderEvent]:
    """Whole lifecycles (placed, out of stock, price error, shipped, delivered), interleaved by time."""
    return simulate_orders(n_orders, seed=seed)


@dataclasses.dataclass(frozen=True, slots=True)
class Encoded:
    key: bytes
    value: bytes
    event_type: bytes


def encode(events: Iterable[OrderEvent]) -> list[Encoded]:
    codec = EventCodec()
    return [Encoded(e.order_id.encode(), codec.encode(e), e.event_type.value.encode()) for e in events]


def produce_backlog(settings: Settings, records: list[Encoded]) -> float:
    """Produce every record (the same key, value and headers as OrderEventProducer) and wait; returns seconds."""
    started = time.perf_counter()
    producer = KafkaProducer(**settings.kafka_client_options(), acks="all", linger_ms=20,
                             batch_size=256 * 1024, client_id="bench-backlog")
    try:
        for r in records:
            producer.send(settings.events_topic, key=r.key, value=r.value,
                          headers=[("event_type", r.event_type), ("content-type", EVENT_CONTENT_TYPE)])
        producer.flush(120)
    finally:
        producer.close(10)
    return time.perf_counter() - started


def now_ms() -> datetime:
    """Now in UTC, truncated to the millisecond (what Avro's timestamp-millis keeps)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class PacedProducer:
    """Produces events at a fixed offered rate, each stamped ``occurred_at`` = its send time.

    Runs in a thread; ``sent`` maps order id -> occurred_at (epoch seconds) for the latency join.
    """

    def __init__(self, settings: Settings, events: list[OrderEvent], rate: float) -> None:
        self._settings = settings
        self._events = events
        self._rate = rate
        self.sent: dict[str, float] = {}
        self.behind_s = 0.0  # how far the pacing fell behind its schedule at worst
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> PacedProducer:
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join()

    def _run(self) -> None:
        with OrderEventProducer(self._settings) as producer:
            start = time.monotonic()
            for i, event in enumerate(self._events):
                due = start + i / self._rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    self.behind_s = max(self.behind_s, -delay)
                stamped = dataclasses.replace(event, occurred_at=now_ms())
                producer.send(stamped)
                self.sent[event.order_id] = stamped.occurred_at.timestamp()
