"""The preferences reader restarts whatever stops it, and ``/readyz`` tells while it has not caught up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kafka import TopicPartition

from consumers.decide import preferences_reader
from consumers.decide.preferences_reader import PreferencesReader
from consumers.exceptions import StateStoreError, StateStoreUnavailable
from consumers.health import ConsumerHealth
from consumers.state.store import StateStore, open_store
from ordernotify.config import Settings
from ordernotify.retry import Backoff
from schemas.codec import PreferencesCodec
from schemas.events import CustomerPreferences

FAST = Backoff(first_s=0.05, cap_s=0.1)


def _opt_out(customer_id: str) -> bytes:
    return PreferencesCodec().encode(CustomerPreferences(customer_id, False, datetime.now(UTC)))


class FakeTopic:
    """The preferences topic in memory, and every consumer the reader builds on it."""

    def __init__(self, partitions: dict[int, list[bytes]] | None) -> None:
        self.partitions = partitions  # None: the topic does not exist
        self.consumers: list[FakeConsumer] = []
        self.fail_next_poll = threading.Event()
        self.may_build = threading.Event()  # cleared: a new consumer waits (the test looks at the reader meanwhile)
        self.may_build.set()


class FakeConsumer:
    """The part of kafka-python's KafkaConsumer the reader uses, without a group: assign, seek, poll."""

    def __init__(self, topic: FakeTopic) -> None:
        assert topic.may_build.wait(5)
        self.topic = topic
        self.positions: dict[TopicPartition, int] = {}
        self.closed = False
        topic.consumers.append(self)

    def partitions_for_topic(self, name: str) -> set[int] | None:
        return None if self.topic.partitions is None else set(self.topic.partitions)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.positions = {tp: self.positions.get(tp, -1) for tp in partitions}  # -1: no position yet

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self.positions[tp] = 0

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        assert self.topic.partitions is not None
        return {tp: len(self.topic.partitions[tp.partition]) for tp in partitions}

    def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def poll(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        if self.closed:
            raise RuntimeError("consumer closed")
        if self.topic.fail_next_poll.is_set():
            self.topic.fail_next_poll.clear()
            raise RuntimeError("poll failed")
        assert self.topic.partitions is not None
        batches: dict[TopicPartition, list[Any]] = {}
        for tp, position in self.positions.items():
            assert position >= 0, "polled a partition without a position"
            log = self.topic.partitions[tp.partition]
            if position < len(log):
                batches[tp] = [SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=offset, value=value)
                               for offset, value in enumerate(log[position:], position)]
                self.positions[tp] = len(log)
        if not batches:
            time.sleep(0.01)
        return batches

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.close()


def _use(monkeypatch: pytest.MonkeyPatch, topic: FakeTopic) -> None:
    monkeypatch.setattr(preferences_reader, "KafkaConsumer", lambda **options: FakeConsumer(topic))


def _opted_out(store: StateStore, customer_id: str) -> bool:
    with store.transaction() as tx:
        return tx.opted_out(customer_id)


def _wait(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_failed_reading_restarts_from_the_beginning_and_readiness_follows(
    monkeypatch: pytest.MonkeyPatch, store: StateStore
) -> None:
    topic = FakeTopic({0: [_opt_out("C-1")]})
    _use(monkeypatch, topic)
    health = ConsumerHealth()
    reader = PreferencesReader(Settings(), store, health, restart_backoff=FAST)
    assert not health.report().checks["preferences"]  # not read yet
    reader.start()
    try:
        _wait(lambda: health.report().checks["preferences"])
        assert _opted_out(store, "C-1")

        topic.may_build.clear()
        topic.fail_next_poll.set()
        topic.partitions[0].append(_opt_out("C-2"))  # type: ignore[index]
        _wait(lambda: reader.restarts == 1)
        report = health.report()  # the new consumer is not built yet
        assert not report.checks["preferences"]
        assert report.details["preferences"] == "reader restarting after RuntimeError"
        assert topic.consumers[0].closed

        topic.may_build.set()
        _wait(lambda: health.report().checks["preferences"])
        assert _opted_out(store, "C-2")
        assert len(topic.consumers) == 2
        assert reader.applied == 3  # C-1 read again by the new consumer, from the beginning
    finally:
        reader.stop()
    assert topic.consumers[1].closed


def test_a_store_error_that_retrying_cannot_fix_restarts_the_reading(
    monkeypatch: pytest.MonkeyPatch, store: StateStore
) -> None:
    topic = FakeTopic({0: [_opt_out("C-1")]})
    _use(monkeypatch, topic)
    transaction, calls = store.transaction, [0]

    def failing_once() -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise StateStoreError("schema problem")
        return transaction()

    monkeypatch.setattr(store, "transaction", failing_once)
    health = ConsumerHealth()
    reader = PreferencesReader(Settings(), store, health, restart_backoff=FAST).start()
    try:
        _wait(lambda: health.report().checks["preferences"])
    finally:
        reader.stop()
    assert reader.restarts == 1 and len(topic.consumers) == 2
    monkeypatch.undo()
    assert _opted_out(store, "C-1")


def test_a_store_away_for_a_while_is_waited_for_without_a_restart(
    monkeypatch: pytest.MonkeyPatch, store: StateStore
) -> None:
    topic = FakeTopic({0: [_opt_out("C-1")]})
    _use(monkeypatch, topic)
    monkeypatch.setattr(preferences_reader, "STORE_BACKOFF", Backoff(first_s=0.01, cap_s=0.02))
    transaction, calls, store_ok_seen = store.transaction, [0], []
    health = ConsumerHealth()

    def away_twice() -> Any:
        calls[0] += 1
        if calls[0] <= 2:
            raise StateStoreUnavailable("connection refused")
        store_ok_seen.append(health.store_ok)
        return transaction()

    monkeypatch.setattr(store, "transaction", away_twice)
    reader = PreferencesReader(Settings(), store, health, restart_backoff=FAST).start()
    try:
        _wait(lambda: health.report().checks["preferences"])
    finally:
        reader.stop()
    assert store_ok_seen == [False]  # reported while away
    assert health.store_ok and reader.restarts == 0 and len(topic.consumers) == 1
    monkeypatch.undo()
    assert _opted_out(store, "C-1")


def test_no_topic_yet_is_ready_and_the_topic_is_read_once_it_exists(
    monkeypatch: pytest.MonkeyPatch, store: StateStore
) -> None:
    topic = FakeTopic(None)
    _use(monkeypatch, topic)
    health = ConsumerHealth()
    reader = PreferencesReader(Settings(), store, health).start()
    try:
        _wait(lambda: health.report().checks["preferences"])
        topic.partitions = {0: [_opt_out("C-1")], 1: []}
        _wait(lambda: reader.applied == 1)
    finally:
        reader.stop()
    monkeypatch.undo()
    assert _opted_out(store, "C-1")


def test_a_partition_added_later_is_read_from_its_beginning(monkeypatch: pytest.MonkeyPatch, store: StateStore) -> None:
    topic = FakeTopic({0: [_opt_out("C-1")]})
    _use(monkeypatch, topic)
    reader = PreferencesReader(Settings(), store, partitions_check_s=0.05).start()
    try:
        _wait(lambda: reader.applied == 1)
        topic.partitions[1] = [_opt_out("C-2"), _opt_out("C-3")]  # type: ignore[index]
        _wait(lambda: reader.applied == 3)
    finally:
        reader.stop()
    monkeypatch.undo()
    assert _opted_out(store, "C-2") and _opted_out(store, "C-3")
    assert reader.restarts == 0 and len(topic.consumers) == 1
