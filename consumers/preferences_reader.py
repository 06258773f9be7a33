"""Keep the state store's customer preferences in step with the compacted preferences topic.

Reads every partition from the beginning (no consumer group: every consumer
instance needs all preferences) and stores the newest per customer; a change
applies from the next decision on.
"""

from __future__ import annotations

import logging
import threading
import time

from kafka import KafkaConsumer, TopicPartition

from consumers.state.store import StateStore
from ordernotify.config import Settings
from ordernotify.errors import OrderNotifyError
from schemas.codec import PreferencesCodec

log = logging.getLogger(__name__)


class PreferencesReader:
    def __init__(self, settings: Settings, store: StateStore) -> None:
        self._settings = settings
        self._store = store
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="preferences-reader", daemon=True)
        self._codec = PreferencesCodec()
        self.applied = 0

    def start(self) -> PreferencesReader:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        consumer = KafkaConsumer(**self._settings.kafka_client_options(), group_id=None, enable_auto_commit=False,
                                 client_id="ordernotify-preferences", fetch_max_wait_ms=200)
        try:
            topic = self._settings.preferences_topic
            partitions: set[int] = set()
            while not partitions and not self._stop.is_set():
                partitions = consumer.partitions_for_topic(topic) or set()
                if not partitions:
                    self._stop.wait(1.0)
            if not partitions:  # stopped before the topic existed
                return
            assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            consumer.seek_to_beginning(*assigned)
            while not self._stop.is_set():
                for records in consumer.poll(500).values():
                    for record in records:
                        self._apply(record)
        except Exception:
            log.exception("preferences reader stopped")
        finally:
            consumer.close()

    def _apply(self, record: object) -> None:
        value = getattr(record, "value", None)
        if value is None:  # a tombstone: the customer's preferences were deleted; defaults apply
            return
        try:
            preferences = self._codec.decode(value)
        except OrderNotifyError as exc:
            log.warning("skipping preferences record %s[%d]@%d: %s", getattr(record, "topic", "?"),
                        getattr(record, "partition", -1), getattr(record, "offset", -1), exc)
            return
        while not self._stop.is_set():
            try:
                with self._store.transaction() as tx:
                    tx.set_preferences(preferences.customer_id, preferences.informational_updates,
                                       preferences.updated_at.timestamp())
                self.applied += 1
                return
            except OrderNotifyError as exc:
                if not exc.retriable:
                    raise
                log.warning("state store unavailable for preferences: %s", exc)
                time.sleep(1.0)
