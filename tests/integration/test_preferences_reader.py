"""The preferences reader over the real broker: a consumer broken mid-run is replaced and nothing is missed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewPartitions
from kafka.errors import IncompatibleBrokerVersion

from consumers.decide import preferences_reader
from consumers.decide.preferences_reader import PreferencesReader
from consumers.health import ConsumerHealth
from consumers.state.store import StateStore, open_store
from ordernotify.config import Settings
from ordernotify.retry import Backoff
from producers.event_producer import OrderEventProducer
from schemas.codec import PreferencesCodec
from schemas.events import CustomerPreferences

pytestmark = pytest.mark.integration


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[KafkaConsumer]:
    """Every KafkaConsumer the reader builds, in order."""
    consumers: list[KafkaConsumer] = []

    class Recorded(KafkaConsumer):
        def __init__(self, **options: Any) -> None:
            super().__init__(**options)
            consumers.append(self)

    monkeypatch.setattr(preferences_reader, "KafkaConsumer", Recorded)
    return consumers


def _opt_out(settings: Settings, customer_id: str) -> None:
    with OrderEventProducer(settings) as producer:
        producer.publish_preferences(CustomerPreferences(customer_id, False, datetime.now(UTC)))


def _opted_out(store: StateStore, customer_id: str) -> bool:
    with store.transaction() as tx:
        return tx.opted_out(customer_id)


def _wait(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_consumer_closed_under_the_reader_is_replaced_and_later_preferences_apply(
    settings: Settings, store: StateStore, built: list[KafkaConsumer]
) -> None:
    _opt_out(settings, "C-1")
    health = ConsumerHealth()
    reader = PreferencesReader(settings, store, health, restart_backoff=Backoff(first_s=0.2, cap_s=0.5))
    assert not health.report().checks["preferences"]
    reader.start()
    try:
        _wait(lambda: health.report().checks["preferences"])
        assert _opted_out(store, "C-1")  # read up to the end before readiness

        built[0].close()  # from outside, mid-poll: its next poll raises
        _opt_out(settings, "C-2")
        _wait(lambda: _opted_out(store, "C-2"))
        _wait(lambda: health.report().checks["preferences"])
    finally:
        reader.stop()
    assert reader.restarts == 1 and len(built) == 2
    assert reader.applied == 3  # C-1 again from the beginning, then C-2


def test_a_partition_added_to_the_topic_is_read(settings: Settings, store: StateStore) -> None:
    reader = PreferencesReader(settings, store, partitions_check_s=0.5).start()
    try:
        _opt_out(settings, "C-1")
        _wait(lambda: reader.applied == 1)
        admin = KafkaAdminClient(**settings.kafka_client_options())
        try:
            admin.create_partitions({settings.preferences_topic: NewPartitions(total_count=4)})
        except IncompatibleBrokerVersion as exc:
            pytest.skip(f"dev broker (Tansu) cannot add partitions to a topic (known limit, "
                        f"devstack/broker.py): {exc}; Apache Kafka can")
        finally:
            admin.close()
        producer = KafkaProducer(**settings.kafka_client_options(), acks="all")
        try:
            value = PreferencesCodec().encode(CustomerPreferences("C-2", False, datetime.now(UTC)))
            producer.send(settings.preferences_topic, key=b"C-2", value=value, partition=3).get(10)
        finally:
            producer.close()
        _wait(lambda: _opted_out(store, "C-2"))
    finally:
        reader.stop()
    assert reader.restarts == 0
