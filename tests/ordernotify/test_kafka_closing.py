"""Closing a kafka-python consumer while its network thread runs a read task (ordernotify/kafka_closing.py).

On a clean stop, kafka-python's ``close()`` closed the sockets from the calling thread while the consumer's
network thread could be between two reads of one of them; the task then registered a closed socket and
``kafka.net.selector`` logged ``ValueError: Invalid file descriptor: -1`` as an unhandled task. The window is a
few bytecodes wide, so the test holds the network thread in it: a read wait begun while the consumer is
being closed waits (up to a bound) until its socket was closed before it registers it. A plain ``close()``
then always hits the race; :func:`close_consumer` never does, as the network thread has stopped before any
socket is closed."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.net.manager import KafkaConnectionManager
from kafka.net.selector import NetworkSelector

from devstack.broker import EmbeddedBroker
from ordernotify.kafka_closing import close_consumer

pytestmark = pytest.mark.integration

HOLD_S = 1.0  # longest a held read wait waits for its socket to be closed


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()} {record.exc_info!r}")


@pytest.fixture
def kafka_warnings() -> Iterator[_Captured]:
    """kafka-python's WARNING and ERROR lines, whatever level the suite set its loggers to."""
    kafka, captured = logging.getLogger("kafka"), _Captured()
    level = kafka.level
    kafka.setLevel(logging.WARNING)
    kafka.addHandler(captured)
    try:
        yield captured
    finally:
        kafka.removeHandler(captured)
        kafka.setLevel(level)


@pytest.fixture
def read_waits_held(monkeypatch: pytest.MonkeyPatch) -> None:
    """When a client starts closing its connections, a network thread about to wait for a socket to be readable
    first waits until that socket is closed (or HOLD_S passed): the moment the race needs, made certain."""
    closing: set[NetworkSelector] = set()  # the loops of the clients closing their connections
    wait_io: Callable[..., Any] = NetworkSelector._wait_io
    close: Callable[..., Any] = KafkaConnectionManager.close

    def held(self: NetworkSelector, fileobj: Any, event: int, timeout_at: float | None) -> None:
        if self in closing and threading.current_thread().name.startswith("kafka-io-") \
                and isinstance(fileobj, socket.socket):
            deadline = time.monotonic() + HOLD_S
            while fileobj.fileno() != -1 and time.monotonic() < deadline:
                time.sleep(0.005)
        wait_io(self, fileobj, event, timeout_at)

    def closing_connections(self: KafkaConnectionManager, node_id: Any = None, timeout_ms: Any = None) -> None:
        if node_id is None:
            closing.add(self._net)
            time.sleep(0.2)  # a fetch answer comes in (every few ms), and its read task waits in the window
        close(self, node_id=node_id, timeout_ms=timeout_ms)

    monkeypatch.setattr(NetworkSelector, "_wait_io", held)
    monkeypatch.setattr(KafkaConnectionManager, "close", closing_connections)


def _reading_consumer(broker: EmbeddedBroker) -> KafkaConsumer:
    """A consumer whose fetches come back every few milliseconds, so that a read task is always at work."""
    topic = f"closing.{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    producer.send(topic, b"x")
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=None, enable_auto_commit=False,
                             fetch_max_wait_ms=5)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    for _ in range(3):
        consumer.poll(100)
    return consumer


def _selector_noise(captured: _Captured) -> list[str]:
    return [line for line in captured.lines if "Unhandled exception" in line or "Invalid file descriptor" in line
            or "Error receiving network data" in line]


def test_a_plain_close_under_a_read_task_hits_the_closed_socket(
    broker: EmbeddedBroker, kafka_warnings: _Captured, read_waits_held: None,
) -> None:
    """The race itself, as kafka-python 3.0 has it: if this starts to fail, the library closes safely and
    ordernotify/kafka_closing.py can go. A fetch answer must come in during the held moment, which it does about
    four times in five: up to five consumers are closed until one hits it."""
    for _ in range(5):
        _reading_consumer(broker).close(autocommit=False)
        if _selector_noise(kafka_warnings):
            break
    assert _selector_noise(kafka_warnings), kafka_warnings.lines


def test_close_consumer_stops_the_network_thread_before_closing_a_socket(
    broker: EmbeddedBroker, kafka_warnings: _Captured, read_waits_held: None,
) -> None:
    for _ in range(3):  # three closes: a plain close would hit the race in nearly every such run
        consumer = _reading_consumer(broker)
        close_consumer(consumer)
    assert not _selector_noise(kafka_warnings), kafka_warnings.lines
    assert not [t for t in threading.enumerate() if t.name.startswith("kafka-io-") and t.is_alive()
                and t.name.endswith(consumer.config["client_id"])]
