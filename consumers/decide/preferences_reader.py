"""Keep the state store's customer preferences in step with the compacted preferences topic.

Reads every partition from the beginning (no consumer group: every consumer
instance needs all preferences) and stores the newest per customer; a change
applies from the next decision on.

The reading is supervised: whatever ends it (the broker, the store, a bug) is
logged, reported to ``/readyz`` (check ``preferences``) and the reading starts
over with a new KafkaConsumer from the beginning of the topic, after a delay
from :class:`ordernotify.retry.Backoff`. Reading a compacted topic again is
cheap and safe: the store keeps the newest preference per customer whatever
order they arrive in. ``preferences`` passes once a reading has reached the
end offsets the topic had when that reading began (or found no topic).

Partitions added to the topic later are found within two PARTITIONS_CHECK_S
(kafka-python refreshes the topic's metadata that often, and the reader looks
at it that often) and read from their beginning.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Self

from kafka import KafkaConsumer, TopicPartition

from consumers.health import ConsumerHealth
from consumers.state.store import StateStore
from ordernotify.config import Settings
from ordernotify.errors import OrderNotifyError
from ordernotify.kafka_closing import close_consumer
from ordernotify.retry import Backoff, retry_blocking
from schemas.codec import PreferencesCodec

log = logging.getLogger(__name__)

POLL_MS = 500
PARTITIONS_CHECK_S = 15.0
RESTART_BACKOFF = Backoff(first_s=1.0, cap_s=30.0)  # between two readings after a failure
HEALTHY_READING_S = 60.0  # a reading that failed after this long starts the restart backoff over
STORE_BACKOFF = Backoff(first_s=0.5, cap_s=10.0)  # the store away: retried where the reading is, not restarted


class PreferencesReader:
    """Applies the preferences topic to the state store in a thread of its own that restarts it on any failure.

    Another compacted topic kept in the store the same way subclasses it: ``what``, ``_topic``, ``_loading``,
    ``_reached`` and ``_apply`` (consumers/decide/suppressions_reader.py)."""

    what = "preferences"

    def __init__(self, settings: Settings, store: StateStore, health: ConsumerHealth | None = None, *,
                 restart_backoff: Backoff = RESTART_BACKOFF, partitions_check_s: float = PARTITIONS_CHECK_S) -> None:
        self._settings = settings
        self._store = store
        self._health = health
        self._restart_backoff = restart_backoff
        self._partitions_check_s = partitions_check_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name=f"{self.what}-reader", daemon=True)
        self._codec = PreferencesCodec()
        self._failures = 0  # readings that failed in a row: how long the next restart waits
        self.applied = 0
        self.restarts = 0
        self._loading()

    def _topic(self) -> str:
        return self._settings.preferences_topic

    def _loading(self) -> None:
        if self._health is not None:
            self._health.preferences_loading()

    def _reached(self, error: BaseException | None) -> None:
        if self._health is not None:
            self._health.preferences_reached(error)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _supervise(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self._read()
            except Exception as exc:  # anything at all: a dead reader would silently e-mail customers who opted out
                if self._stop.is_set():  # e.g. the store closed while stopping: not a failure to restart from
                    log.debug("%s reader ended while stopping: %s", self.what, exc)
                    return
                if time.monotonic() - began >= HEALTHY_READING_S:
                    self._failures = 0  # a new failure, not the same one again: start the backoff over
                delay = self._restart_backoff.delay(self._failures)
                self._failures += 1
                log.exception("%s reader failed; reading the topic again from its beginning in %.1f s",
                              self.what, delay)
                self._reached(exc)
                self.restarts += 1
                self._stop.wait(delay)

    def _read(self) -> None:
        """One reading, with a new consumer from the beginning of every partition, until stopped or failed."""
        consumer = KafkaConsumer(**self._settings.kafka_client_options(), group_id=None, enable_auto_commit=False,
                                 client_id=f"ordernotify-{self.what}", fetch_max_wait_ms=200,
                                 metadata_max_age_ms=int(self._partitions_check_s * 1000))
        try:
            self._loading()
            topic = self._topic()
            partitions: set[int] = set()
            while not partitions and not self._stop.is_set():
                partitions = consumer.partitions_for_topic(topic) or set()
                if not partitions:
                    self._report_caught_up()  # no topic yet: no preference to wait for
                    self._stop.wait(1.0)
            if not partitions:  # stopped before the topic existed
                return
            assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            consumer.seek_to_beginning(*assigned)
            behind: dict[TopicPartition, int] = consumer.end_offsets(assigned)  # not yet read up to these
            caught_up, next_check = False, time.monotonic() + self._partitions_check_s
            while not self._stop.is_set():
                for records in consumer.poll(POLL_MS).values():
                    for record in records:
                        self._apply(record)
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self._partitions_check_s
                    assigned = self._assign_added(consumer, assigned)
                if not caught_up:
                    behind = {tp: end for tp, end in behind.items() if consumer.position(tp) < end}
                    if not behind:
                        caught_up = True
                        log.info("%s read up to the topic's end (%d applied)", self.what, self.applied)
                        self._report_caught_up()
        finally:
            try:
                close_consumer(consumer)
            except Exception:  # a consumer broken enough to fail its close must not stop the restart
                log.warning("closing the preferences consumer failed", exc_info=True)

    def _assign_added(self, consumer: Any, assigned: list[TopicPartition]) -> list[TopicPartition]:
        """Partitions added to the topic since it was assigned join the assignment, read from their beginning.

        Not counted in the catching up that ``preferences`` waits for: what they hold is news, not history."""
        topic = self._topic()
        known = {tp.partition for tp in assigned}
        added = [TopicPartition(topic, p) for p in sorted(set(consumer.partitions_for_topic(topic) or ()) - known)]
        if not added:
            return assigned
        log.info("reading %d partitions added to the %s topic", len(added), self.what)
        consumer.assign(assigned + added)
        consumer.seek_to_beginning(*added)
        return assigned + added

    def _report_caught_up(self) -> None:
        self._reached(None)

    def _apply(self, record: Any) -> None:
        value = getattr(record, "value", None)
        if value is None:  # a tombstone: the customer's preferences were deleted; defaults apply
            return
        try:
            preferences = self._codec.decode(value)
        except OrderNotifyError as exc:
            log.warning("skipping preferences record %s[%d]@%d: %s", getattr(record, "topic", "?"),
                        getattr(record, "partition", -1), getattr(record, "offset", -1), exc)
            return

        def store() -> None:
            with self._store.transaction() as tx:
                tx.set_preferences(preferences.customer_id, preferences.informational_updates,
                                   preferences.updated_at.timestamp())

        on_error = self._health.store_reached if self._health is not None else None
        retry_blocking(store, "storing preferences", STORE_BACKOFF, on_error=on_error, stop=self._stop)
        self.applied += 1
