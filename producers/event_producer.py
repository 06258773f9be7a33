"""The API the platform calls to publish order events and customer preferences.

Every record is validated (business rules of :mod:`schemas.validation`) before
it is handed to Kafka, so a bad event is refused here, naming the field,
instead of being dead-lettered later by the consumer. A record Kafka does not
acknowledge surfaces as :class:`DeliveryFailed`: from the handle's
``result()``, or else from the next ``flush()``/``close()`` -- never silently.

Wire format (see ``schemas/README.md``):

* ``orders.events``: key = ``order_id`` (UTF-8), value = Avro single-object
  encoding of ``OrderEvent``, headers ``event_type`` (the symbol, ASCII) and
  ``content-type: application/vnd.ordernotify.order-event+avro``.
* ``customers.preferences`` (compacted): key = ``customer_id`` (UTF-8), value =
  Avro single-object encoding of ``CustomerPreferences``, header
  ``content-type: application/vnd.ordernotify.customer-preferences+avro``.

Headers are informational (routing, tooling); consumers must rely on the
value's own fingerprint, never on headers.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from kafka import KafkaProducer
from kafka.errors import (
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumberError,
    UnknownProducerIdError,
)

from ordernotify.config import Settings
from ordernotify.metrics import Metrics
from ordernotify.reachability import BOOTSTRAP_FAILURES
from producers.exceptions import DeliveryFailed, EventRefused, ProducerError, WouldBlock
from producers.record_encoding import EncodedRecord, RecordEncoder
from schemas.events import CustomerPreferences, OrderEvent
from schemas.exceptions import EventValidationError

log = logging.getLogger(__name__)

_FATAL_IDEMPOTENCE_ERRORS = (UnknownProducerIdError, OutOfOrderSequenceNumberError)

LINGER_MS = 5
BULK_LINGER_MS = 50
BULK_BATCH_BYTES = 256 * 1024


@dataclass(frozen=True)
class DeliveryReport:
    """Where the broker stored one record; ``event_id`` is None for preferences."""

    topic: str
    partition: int
    offset: int
    event_id: str | None


class DeliveryHandle:
    """The non-blocking result of :meth:`OrderEventProducer.send`.

    Wraps kafka-python's future so that callers only ever see our own
    :class:`DeliveryReport` or :class:`DeliveryFailed`.
    """

    def __init__(self, future: Any, topic: str, key: str, event_id: str | None, timeout_s: float) -> None:
        self._future = future
        self.topic = topic
        self.key = key
        self.event_id = event_id
        self._timeout_s = timeout_s
        self.reported = False  # the outcome reached a caller (result() was called)

    def done(self) -> bool:
        return bool(self._future.is_done)

    def failed(self) -> bool:
        return self.done() and bool(self._future.failed())

    def add_done_callback(self, callback: Callable[[DeliveryHandle], None]) -> None:
        """Call ``callback(self)`` once the broker acknowledged the record or its delivery failed: from the Kafka
        client's I/O thread, or at once if that already happened. For callers on an event loop, which must not
        block in :meth:`result`; the callback should only hand over (``loop.call_soon_threadsafe``)."""
        self._future.add_both(lambda _outcome: callback(self))

    def result(self, timeout: float | None = None) -> DeliveryReport:
        """Wait for the broker's acknowledgement; raise :class:`DeliveryFailed` if there is none, or
        :class:`EventRefused` if the broker refused the record for good (too large for the topic: sending it
        again cannot help, so a caller that retries must not)."""
        wait_s = self._timeout_s if timeout is None else timeout
        self.reported = True
        try:
            metadata = self._future.get(timeout=wait_s)
        except KafkaTimeoutError as exc:
            raise DeliveryFailed(
                f"{self.topic}: no acknowledgement for {self._what()} within {wait_s:g} s"
            ) from exc
        except MessageSizeTooLargeError as exc:
            raise EventRefused(EventValidationError(
                "", f"the broker refused {self._what()} as too large for {self.topic} ({exc}): the topic's "
                    "max.message.bytes is below --max-record-bytes")) from exc
        except KafkaError as exc:
            raise DeliveryFailed(f"{self.topic}: {self._what()} not delivered: {exc}") from exc
        return DeliveryReport(metadata.topic, metadata.partition, metadata.offset, self.event_id)

    def _what(self) -> str:
        return f"event {self.event_id} (key {self.key})" if self.event_id else f"record with key {self.key}"


class OrderEventProducer:
    """Publishes :class:`OrderEvent` and :class:`CustomerPreferences` records.

    ``producer`` injects an existing KafkaProducer-like object (tests); it is
    flushed but not closed by :meth:`close`, since its creator owns it.
    ``metrics`` (optional) counts events sent and refused, for a producer run as a service.
    ``bulk``: for a loader that sends many records without waiting (``ordernotify emit``): a batch waits up
    to 50 ms for more records and holds up to 256 KiB, so that the client's I/O thread is woken once per
    batch of many records instead of once per record (which halved emit's rate).
    ``linger_ms``: how long a batch waits for more records, instead of 5 ms (50 ms for ``bulk``); a service
    whose callers wait for each acknowledgement (the webhook gateway) waits less.
    """

    def __init__(self, settings: Settings, producer: Any | None = None, metrics: Metrics | None = None,
                 bulk: bool = False, linger_ms: int | None = None) -> None:
        self._closed = True  # until fully constructed, so __del__ stays quiet
        self._settings = settings
        self._bulk = bulk
        self._linger_ms = linger_ms
        self._metrics = metrics
        self._timeout_s = settings.produce_timeout_s
        self._encoder = RecordEncoder(settings, metrics)
        self._owns_producer = producer is None
        self._producer = producer if producer is not None else self._new_client()
        self._lock = threading.Lock()
        self._pending: set[DeliveryHandle] = set()
        self._stale_client = False
        self._closed = False

    def _new_client(self) -> KafkaProducer:
        """A kafka-python producer, bootstrapped within ``--kafka-connect-timeout-s``.

        A broker that does not answer raises :class:`DeliveryFailed` caused by the bootstrap failure, which the
        commands report as unreachable (exit code 3, :func:`ordernotify.reachability.is_bootstrap_failure`)."""
        settings = self._settings
        try:
            return KafkaProducer(**self._producer_options(settings, self._bulk, self._linger_ms))
        except BOOTSTRAP_FAILURES as exc:
            raise DeliveryFailed(f"cannot reach Kafka at {settings.bootstrap_servers} within "
                                 f"{settings.kafka_connect_timeout_s:g} s: {exc}") from exc
        except KafkaError as exc:
            raise DeliveryFailed(f"cannot start a Kafka producer for {settings.bootstrap_servers}: {exc}") from exc

    @staticmethod
    def _producer_options(settings: Settings, bulk: bool = False, linger_ms: int | None = None) -> dict[str, Any]:
        if linger_ms is None:
            linger_ms = BULK_LINGER_MS if bulk else LINGER_MS
        timeout_ms = max(1, int(settings.produce_timeout_s * 1000))
        request_timeout_ms = min(30000, timeout_ms)
        return {
            # The events topic's limit: a platform's event never leaves here too large for a dead letter.
            # Also how long the constructor waits for a first broker: --kafka-connect-timeout-s, as for every
            # client (else KafkaTimeoutError), not the acknowledgement timeout below.
            **settings.kafka_producer_options(settings.max_record_bytes),
            "acks": "all",
            # kafka-python 3 supports idempotence (and enables it by default); the
            # Tansu dev broker accepts InitProducerId, so it stays on explicitly: a
            # retried batch is not written twice.
            "enable_idempotence": True,
            "linger_ms": linger_ms,
            **({"batch_size": BULK_BATCH_BYTES} if bulk else {}),
            "request_timeout_ms": request_timeout_ms,
            # Upper bound from send() to success or failure, retries included.
            "delivery_timeout_ms": max(timeout_ms, request_timeout_ms + linger_ms),
            # How long send() may block waiting for metadata or buffer space.
            "max_block_ms": timeout_ms,
            "client_id": "ordernotify-producer",
        }

    # -- sending -----------------------------------------------------------

    def send(self, event: OrderEvent, validated: bool = False, may_block: bool = True) -> DeliveryHandle:
        """Validate, encode and hand the event to Kafka without waiting for the broker.

        Raises :class:`EventRefused` (nothing sent) if the event breaks the contract. ``validated``: the
        caller has just checked the rules (as :mod:`producers.json_lines` does), so they are not checked twice.
        ``may_block=False``: raise :class:`WouldBlock` (nothing sent) rather than wait for the topic's metadata or
        a new client (a caller on an event loop, see :meth:`sends_without_waiting`).
        """
        record = self._encoder.event(event, validated)
        handle = self._send(record, may_block)
        if self._metrics is not None:
            self._metrics.producer_sent.labels(event_type=event.event_type.value).inc()
        return handle

    def send_and_wait(self, event: OrderEvent, timeout: float | None = None) -> DeliveryReport:
        """Send and block until the broker acknowledges (``acks=all``) or :class:`DeliveryFailed`."""
        return self.send(event).result(timeout)

    def send_preferences(self, preferences: CustomerPreferences) -> DeliveryHandle:
        """Hand one customer's latest preferences (compacted topic) to Kafka without waiting."""
        return self._send(self._encoder.preferences(preferences))

    def publish_preferences(self, preferences: CustomerPreferences, timeout: float | None = None) -> DeliveryReport:
        """Publish one customer's latest preferences (compacted topic) and wait for the acknowledgement."""
        return self.send_preferences(preferences).result(timeout)

    def send_encoded(self, record: EncodedRecord) -> DeliveryHandle:
        """Hand over a record that a :class:`RecordEncoder` with these settings made (``ordernotify emit``
        encodes in a second process), without waiting."""
        return self._send(record)

    def partitions_for(self, topic: str) -> set[int]:
        """The topic's partitions, fetching its metadata from the broker if the client does not hold it yet.

        Blocks up to the produce timeout; raises :class:`DeliveryFailed` if the broker does not know the topic
        or does not answer. A service calls it once at start, so that its first event is not the one to wait."""
        try:
            return set(self._producer.partitions_for(topic))
        except KafkaError as exc:
            raise DeliveryFailed(f"{topic}: no partition metadata from {self._settings.bootstrap_servers}: "
                                 f"{exc}") from exc

    def sends_without_waiting(self, topic: str) -> bool:
        """Whether :meth:`send` to ``topic`` returns at once: the client holds the topic's partitions and is not to
        be replaced. Otherwise a send may block (fetching metadata, or a new client after the broker forgot this
        one's producer id): a caller on an event loop sends from a thread then. False for an injected client."""
        return not (self._closed or self._stale_client) and self._holds_partitions(topic)

    def _holds_partitions(self, topic: str) -> bool:
        if not self._owns_producer:
            return False  # an injected client: nothing known of it
        # kafka-python (pinned) has no public way to ask without waiting; its send() asks the same.
        return self._producer._metadata.partitions_for_topic(topic) is not None

    def _send(self, record: EncodedRecord, may_block: bool = True) -> DeliveryHandle:
        topic, key = record.topic, record.key
        if self._closed:
            raise ProducerError("the producer is closed")
        stale = self._stale_client  # read once: the client's I/O thread may set it at any moment
        if not may_block and (stale or not self._holds_partitions(topic)):
            raise WouldBlock(f"{topic}: a send now would wait for the Kafka client")
        if stale:
            self._renew_client()
        try:
            future = self._producer.send(topic, key=key.encode("utf-8"), value=record.value, headers=record.headers)
        except KafkaTimeoutError as exc:
            raise DeliveryFailed(f"{topic}: no broker metadata within {self._timeout_s:g} s") from exc
        except KafkaError as exc:
            raise DeliveryFailed(f"{topic}: the producer refused the record: {exc}") from exc
        handle = DeliveryHandle(future, topic, key, record.event_id, self._timeout_s)
        with self._lock:
            self._pending.add(handle)
        future.add_callback(lambda _metadata: self._settled(handle))
        future.add_errback(lambda exc: self._failed(handle, exc))
        return handle

    def _settled(self, handle: DeliveryHandle) -> None:
        with self._lock:
            self._pending.discard(handle)

    def _failed(self, handle: DeliveryHandle, exc: Exception) -> None:
        # Stays pending, so flush()/close() raise it unless a caller already saw it via result().
        log.error("%s: delivery of %s failed: %s", handle.topic, handle._what(), exc)
        if isinstance(exc, _FATAL_IDEMPOTENCE_ERRORS) and self._owns_producer:
            self._stale_client = True

    def _renew_client(self) -> None:
        """The broker no longer knows this client's producer id (it lost its state, or the id expired):
        kafka-python cannot recover such a client, so the next send gets a new one (a new producer id)."""
        with self._lock:
            if not self._stale_client:
                return
            old, self._producer = self._producer, self._new_client()
            self._stale_client = False
        log.warning("replaced the Kafka producer client after the broker forgot its producer id")
        old.close(timeout=0)

    # -- lifecycle ---------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every sent record is acknowledged or failed.

        Raises :class:`DeliveryFailed` for records that failed (or are still
        unacknowledged) and whose failure no caller has seen through ``result()``.
        """
        wait_s = self._timeout_s if timeout is None else timeout
        try:
            self._producer.flush(timeout=wait_s)
        except KafkaTimeoutError as exc:
            raise DeliveryFailed(f"records still unacknowledged after {wait_s:g} s") from exc
        with self._lock:
            pending, self._pending = self._pending, set()
        unseen = [h for h in pending if not h.reported and (h.failed() or not h.done())]
        if unseen:
            try:
                unseen[0].result(timeout=0)
            except DeliveryFailed as exc:
                for handle in unseen:
                    handle.reported = True
                raise DeliveryFailed(f"{len(unseen)} record(s) not delivered; first: {exc}") from exc.__cause__

    def close(self, timeout: float | None = None) -> None:
        """Flush (raising :class:`DeliveryFailed` if records were lost), then release the connection."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush(timeout)
        finally:
            if self._owns_producer:
                self._producer.close(timeout=self._timeout_s if timeout is None else timeout)

    def __enter__(self) -> OrderEventProducer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(f"Unclosed OrderEventProducer {self!r}", ResourceWarning, source=self, stacklevel=1)
