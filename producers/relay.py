"""The outbox relay: JSON events on a staging topic in, validated Avro events on the events topic out, none lost.

Debezium's outbox event router (``deploy/debezium/``) writes each outbox row's ``payload`` to the staging topic
``orders.events.json``. With the committed connector (``value.converter`` = Kafka's ``StringConverter``, payload
column ``jsonb``, ``table.expand.json.payload`` off) a record's value is the payload's JSON text exactly as
PostgreSQL prints it, UTF-8: one event in the shape ``ordernotify emit`` reads
(:func:`producers.json_lines.parse_line`), never wrapped in a JSON string. A value that is a JSON string (what
``JsonConverter`` would make of the same column) is refused with a detail naming the converter.

A batch is one poll of the staging topic. Each record ends in exactly one of two ways: its event is
acknowledged by the broker on the events topic (``acks=all``, idempotent, through
:class:`~producers.event_producer.OrderEventProducer`), or its original bytes are acknowledged on the
dead-letter topic with a reason and a detail naming the field. Only when every record of the batch ended so
are its offsets committed. A crash before that re-reads the batch and sends its events again, under the same
``event_id``, which the consumers drop as duplicates: at least once, never lost. A send or dead letter that
fails is retried (the rest of the batch is not sent twice), and a stop asked meanwhile leaves the batch
uncommitted for the next relay.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from kafka import KafkaConsumer
from kafka.errors import CommitFailedError, RebalanceInProgressError
from kafka.structs import OffsetAndMetadata, TopicPartition

from ordernotify.config import Settings
from ordernotify.errors import DependencyUnreachable, OrderNotifyError
from ordernotify.http_endpoints import ReadinessReport
from ordernotify.kafka_closing import close_consumer
from ordernotify.metrics import Metrics
from ordernotify.reachability import BROKER_SILENCE_S, POLL_BACKOFF, WAITED_OUT, poll_or_unreachable
from ordernotify.retry import Backoff, retry_blocking
from producers.event_producer import DeliveryHandle
from producers.exceptions import DeliveryFailed, EventRefused, InputError
from producers.json_lines import parse_line
from schemas.events import CustomerPreferences, OrderEvent
from schemas.exceptions import DecodeError, InvalidEventError, SumsDoNotAddUpError, SumsError
from schemas.relative_times import reference_now

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 500
UNDECODABLE = DecodeError.reason
INVALID_EVENT = InvalidEventError.reason
SUMS_DO_NOT_ADD_UP = SumsDoNotAddUpError.reason


class EventSender(Protocol):
    """What the relay needs of :class:`~producers.event_producer.OrderEventProducer`."""

    def send(self, event: OrderEvent, validated: bool = False) -> DeliveryHandle: ...

    def send_preferences(self, preferences: CustomerPreferences) -> DeliveryHandle: ...


class DeadLetterSink(Protocol):
    """Publishes one staging record's original bytes with a reason and a detail, and returns only once the broker
    acknowledged it; raises a retriable :class:`~ordernotify.errors.OrderNotifyError` if it did not.

    The command wires the consumers' dead-letter producer in (the same record format, so ``ordernotify dlq``
    lists and replays these too); it also writes the one log line per dead letter."""

    def publish(self, record: Any, reason: str, detail: str) -> None: ...


@dataclass(frozen=True)
class Refusal:
    """Why a staging record cannot become an event: a dead-letter reason code and a detail naming the field."""

    reason: str
    detail: str


def read_value(value: bytes | None, now: datetime | None = None) -> OrderEvent | CustomerPreferences | Refusal:
    """One staging record's value -> its event (or preferences update), or why it is none."""
    if value is None:
        return Refusal(UNDECODABLE, "no value (a tombstone): the outbox router sends none with tombstones.on.delete "
                                    "false")
    text = value.decode("utf-8", "surrogateescape")
    try:
        return parse_line(text, now=now)
    except InputError as exc:
        detail = f"{exc.field}: {exc.problem}" if exc.field else exc.problem
        if exc.problem.startswith("must be a JSON object, not str"):
            detail += (" (a JSON text inside a JSON string: set the connector's value.converter to "
                       "org.apache.kafka.connect.storage.StringConverter, deploy/debezium/)")
        if isinstance(exc.__cause__, SumsError):
            return Refusal(SUMS_DO_NOT_ADD_UP, detail)
        if exc.field or isinstance(exc.__cause__, OrderNotifyError):
            return Refusal(INVALID_EVENT, detail)
        return Refusal(UNDECODABLE, detail)  # not UTF-8, not JSON, not an object


@dataclass
class _Pending:
    """The records of a batch that have not ended yet, kept across retries."""

    records: list[Any]
    ended: set[int] = field(default_factory=set)  # indexes acknowledged or dead-lettered

    @property
    def done(self) -> bool:
        return len(self.ended) == len(self.records)


@dataclass
class RelayCounts:
    """What the relay did since it started (for logs and tests; the metrics count the same)."""

    relayed: int = 0
    dead_lettered: int = 0
    batches: int = 0


class BatchRelay:
    """Ends every record of a batch: sent and acknowledged, or dead-lettered and acknowledged."""

    def __init__(self, sender: EventSender, dead_letters: DeadLetterSink, metrics: Metrics | None = None,
                 backoff: Backoff | None = None) -> None:
        self._sender = sender
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._backoff = backoff or Backoff()
        self.counts = RelayCounts()

    def relay(self, records: list[Any], stop: threading.Event | None = None) -> None:
        """Return once every record ended; retriable failures (broker or dead-letter topic away) are retried with
        backoff. Raises if ``stop`` is set while waiting to retry, or for a failure retrying cannot help: either
        way the batch's offsets must not be committed."""
        pending = _Pending(records)
        retry_blocking(lambda: self._attempt(pending), "relaying a batch", self._backoff, stop=stop)
        self.counts.batches += 1

    def _attempt(self, pending: _Pending) -> None:
        """Send what has not ended yet, dead-letter what cannot be sent, then wait for every acknowledgement."""
        now = reference_now()  # one instant for the batch's relative times, as emit has for a file
        in_flight: list[tuple[int, DeliveryHandle]] = []
        refused: list[tuple[int, Refusal]] = []
        failure: DeliveryFailed | None = None
        for index, record in enumerate(pending.records):
            if index in pending.ended:
                continue
            value = read_value(record.value, now)
            if isinstance(value, Refusal):
                refused.append((index, value))
                continue
            try:
                if isinstance(value, OrderEvent):
                    in_flight.append((index, self._sender.send(value, validated=True)))
                else:
                    in_flight.append((index, self._sender.send_preferences(value)))
            except EventRefused as exc:  # encodes too large: told as the field it is about
                refused.append((index, Refusal(INVALID_EVENT, f"{exc.field}: {exc.problem}" if exc.field
                                               else exc.problem)))
            except DeliveryFailed as exc:  # no metadata in time: the rest waits for the retry
                failure = exc
                break
        for index, handle in in_flight:  # what is in flight is awaited even after a failure, so it is not resent
            try:
                handle.result()
            except DeliveryFailed as exc:
                failure = failure or exc
                continue
            except EventRefused as exc:  # refused by the broker for good (too large for the topic): not retried
                refused.append((index, Refusal(INVALID_EVENT, exc.problem)))
                continue
            pending.ended.add(index)
            self.counts.relayed += 1
        for index, refusal in refused:
            self._dead_letters.publish(pending.records[index], refusal.reason, refusal.detail)
            pending.ended.add(index)
            self.counts.dead_lettered += 1
            if self._metrics is not None:
                self._metrics.count_dead_letter(refusal.reason)
        if failure is not None:
            raise failure


def batch_offsets(batch: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, OffsetAndMetadata]:
    """The offsets to commit once a batch ended: each partition's last record + 1."""
    return {tp: OffsetAndMetadata(records[-1].offset + 1, "", -1) for tp, records in batch.items() if records}


class OutboxRelay:
    """The consumer-group member: poll a batch of the staging topic, end every record of it, commit, again.

    Runs in one thread (kafka-python's consumer is used from that thread only); ``stop`` ends it after the
    batch in flight is committed. The consumer is closed on the way out, its network thread first
    (:func:`ordernotify.kafka_closing.close_consumer`)."""

    def __init__(self, consumer: Any, topic: str, batch_relay: BatchRelay, max_records: int,
                 metrics: Metrics | None = None, on_batch: Callable[[], None] = lambda: None,
                 bootstrap_servers: str = "") -> None:
        self._consumer = consumer
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._batch_relay = batch_relay
        self._max_records = max_records
        self._metrics = metrics
        self._on_batch = on_batch
        self.joined = False
        self._polled_at = time.monotonic()  # the last poll a broker answered (start: the grace of a first poll)

    def readiness(self) -> ReadinessReport:
        """What ``/readyz`` says: in the group, and a broker answered a poll within ``BROKER_SILENCE_S`` (a relay
        waiting out an outage is alive, not ready: its records wait)."""
        broker = time.monotonic() - self._polled_at < BROKER_SILENCE_S
        checks = {"group_joined": self.joined, "broker": broker}
        details = {"group_joined": "no partitions assigned yet",
                   "broker": f"no successful poll for {BROKER_SILENCE_S:.0f} s"}
        return ReadinessReport(checks, {name: details[name] for name, ok in checks.items() if not ok})

    def run(self, stop: threading.Event) -> None:
        self._consumer.subscribe([self._topic])
        log.info("relaying %s to the events topic", self._topic)
        try:
            while not stop.is_set():
                batch = self._poll_through_outages(stop)
                self._polled_at = time.monotonic()
                self.joined = bool(self._consumer.assignment())
                if not batch:
                    continue
                records = [record for records in batch.values() for record in records]
                try:
                    self._batch_relay.relay(records, stop)
                except OrderNotifyError as exc:
                    if stop.is_set():
                        log.warning("stopping: a batch of %d records is left uncommitted for the next relay (%s)",
                                    len(records), exc)
                        return
                    raise
                self._commit(batch)
                self._on_batch()
        finally:
            close_consumer(self._consumer, autocommit=False)
            counts = self._batch_relay.counts
            log.info("relay stopped: %d events relayed, %d dead-lettered", counts.relayed, counts.dead_lettered)

    def _poll_through_outages(self, stop: threading.Event) -> dict[TopicPartition, list[Any]]:
        """The next records; while no broker answers, poll again after a backoff until one does (nothing
        polled, an empty batch, once ``stop`` is set meanwhile)."""
        try:
            return retry_blocking(lambda: poll_or_unreachable(self._consumer, POLL_TIMEOUT_MS, self._max_records,
                                                              self._bootstrap_servers),
                                  "polling the staging topic", POLL_BACKOFF, stop=stop)
        except DependencyUnreachable:
            if stop.is_set():
                return {}
            raise

    def _commit(self, batch: dict[TopicPartition, list[Any]]) -> None:
        try:
            self._consumer.commit(batch_offsets(batch))
        except (CommitFailedError, RebalanceInProgressError, *WAITED_OUT) as exc:
            # Left the group meanwhile (a batch retried past --max-poll-interval-s), or the broker went away during
            # the commit: the records are read again, by us or another member, and sent again under the same event
            # ids (the next batch's commit covers them if we keep the partitions). Never a reason to stop.
            log.warning("commit failed, the batch may be relayed again: %s", exc)
            return
        if self._metrics is not None:
            self._metrics.last_commit.set(time.time())


def create_relay_consumer(settings: Settings) -> KafkaConsumer:
    """A member of the relay's own group (``--relay-group-id``), committing only by hand.

    The group's tuning (session timeout, records per poll, poll deadline) is the consumers' (``--help-all`` of
    ``ordernotify consume``), read from its ``ORDERNOTIFY_*`` variables."""
    return KafkaConsumer(
        **settings.kafka_consumer_options(),
        group_id=settings.relay_group_id,
        client_id=f"ordernotify-relay-{settings.relay_group_id}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # a new group starts at the topic's beginning: nothing before it is skipped
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=max(1000, settings.session_timeout_ms // 4),
        max_poll_records=settings.max_poll_records,
        # A batch takes one round of acknowledgements; only an outage of the events or dead-letter topic holds
        # the next poll back that long, and then another member may as well take the partitions.
        max_poll_interval_ms=int(settings.max_poll_interval_s * 1000),
        fetch_max_wait_ms=100,
    )
