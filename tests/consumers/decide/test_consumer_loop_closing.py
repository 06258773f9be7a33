"""The consumer loop closes its kafka-python consumer only once no worker thread of its own is inside it, and
a broker that does not answer a commit or a poll is waited out, not a reason to stop.

A poll runs in a worker thread, which cancelling the loop's task does not end; closing the consumer meanwhile
closes its sockets under that poll (ordernotify/kafka_closing.py has the rest of the story)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import (
    Cancelled,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RebalanceInProgressError,
    RequestTimedOutError,
)

from consumers.decide import consumer_loop
from consumers.decide.consumer_loop import ConsumerLoop
from ordernotify.config import Settings
from ordernotify.retry import Backoff


class _SlowPollConsumer:
    """Enough of KafkaConsumer for the loop; its poll waits until it is let go, and records what overlapped."""

    def __init__(self) -> None:
        self.in_poll = threading.Event()
        self.let_go = threading.Event()
        self.polling = False
        self.closed_while_polling: bool | None = None

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        pass

    def poll(self, timeout_ms: int, max_records: int | None = None) -> dict[Any, list[Any]]:
        self.polling = True
        self.in_poll.set()
        self.let_go.wait(10)
        self.polling = False
        return {}

    def assignment(self) -> set[Any]:
        return set()

    def close(self, autocommit: bool = True) -> None:
        self.closed_while_polling = self.polling


def test_a_cancelled_loop_closes_the_consumer_after_its_poll_returned() -> None:
    consumer = _SlowPollConsumer()
    loop = ConsumerLoop(Settings(), decider=None, consumer=consumer, dead_letters=None)  # type: ignore[arg-type]

    async def scenario() -> None:
        running = asyncio.create_task(loop.run(asyncio.Event()))
        await asyncio.to_thread(consumer.in_poll.wait, 10)
        running.cancel()
        await asyncio.sleep(0.1)
        assert consumer.closed_while_polling is None  # still waiting for the poll
        consumer.let_go.set()
        try:
            await running
        except asyncio.CancelledError:
            pass

    asyncio.run(scenario())
    assert consumer.closed_while_polling is False



class _BrokerGoneAtCommitConsumer(_SlowPollConsumer):
    """A commit that fails as kafka-python's does when the broker goes away during it."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error
        self.commits = 0

    def commit(self, offsets: Any = None, timeout_ms: Any = None) -> None:
        self.commits += 1
        raise self.error


@pytest.mark.parametrize("error", [KafkaTimeoutError("Timeout after 30000ms"),
                                   KafkaConnectionError("Connection reset by peer"), NodeNotReadyError(1),
                                   RequestTimedOutError("Request timed out after 30000 ms"), Cancelled(),
                                   RebalanceInProgressError()],
                         ids=lambda e: type(e).__name__)
def test_a_commit_the_broker_did_not_answer_is_left_to_redelivery_not_a_reason_to_stop(error: Exception) -> None:
    """Before, the error left the loop and the whole consumer exited (\"cannot reach the Kafka broker\") when the
    broker was killed while a batch was being committed; the records are redelivered instead, and deduplicated."""
    consumer = _BrokerGoneAtCommitConsumer(error)
    loop = ConsumerLoop(Settings(), decider=None, consumer=consumer, dead_letters=None)  # type: ignore[arg-type]
    asyncio.run(loop._commit({TopicPartition("orders.events", 0): 8}))
    assert consumer.commits == 1


class _BrokerGoneAtPollConsumer(_SlowPollConsumer):
    """A poll that raises as kafka-python's sometimes does while no broker answers, ``failures`` times; then
    empty polls, the last of which stops the loop."""

    def __init__(self, error: Exception, failures: int, stop: asyncio.Event | None = None) -> None:
        super().__init__()
        self.let_go.set()
        self.error, self.failures, self.polls = error, failures, 0
        self.stop = stop
        self.stop_loop: asyncio.AbstractEventLoop | None = None

    def poll(self, timeout_ms: int, max_records: int | None = None) -> dict[Any, list[Any]]:
        self.polls += 1
        if self.polls <= self.failures:
            raise self.error
        if self.polls >= self.failures + 2 and self.stop is not None and self.stop_loop is not None:
            self.stop_loop.call_soon_threadsafe(self.stop.set)
        return {}


def _run_loop(consumer: _BrokerGoneAtPollConsumer) -> None:
    loop = ConsumerLoop(Settings(), decider=None, consumer=consumer, dead_letters=None)  # type: ignore[arg-type]

    async def scenario() -> None:
        stop = asyncio.Event()
        consumer.stop, consumer.stop_loop = stop, asyncio.get_running_loop()
        await asyncio.wait_for(loop.run(stop), 20)

    asyncio.run(scenario())


@pytest.fixture
def quick_poll_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer_loop, "POLL_BACKOFF", Backoff(first_s=0.01, cap_s=0.02))


@pytest.mark.usefixtures("quick_poll_backoff")
@pytest.mark.parametrize("error", [KafkaTimeoutError("Timeout after 30000ms"),
                                   KafkaConnectionError("111 ECONNREFUSED"), NodeNotReadyError(1),
                                   # a frozen broker: the metadata request of the coordinator lookup timed out
                                   RequestTimedOutError("Request timed out after 30000 ms"), Cancelled()],
                         ids=lambda e: type(e).__name__)
def test_a_poll_no_broker_answered_is_polled_again_not_a_reason_to_stop(error: Exception) -> None:
    """Before, such an error left the loop and the consumer exited (\"cannot reach the Kafka broker\", exit 3)
    while the broker restarted; now the loop polls again after a backoff and goes on once it answers."""
    consumer = _BrokerGoneAtPollConsumer(error, failures=3)
    _run_loop(consumer)
    assert consumer.polls >= 5  # three failed, then polled on until stopped


def _stop_in_an_outage(consumer: _BrokerGoneAtPollConsumer, after_polls: int, settle_s: float = 0.0) -> float:
    """Run the loop on a broker that never answers; after ``after_polls`` polls (and ``settle_s``) set ``stop``,
    and return how long the loop took to end from then (an error of the loop is raised)."""
    loop = ConsumerLoop(Settings(), decider=None, consumer=consumer, dead_letters=None)  # type: ignore[arg-type]

    async def scenario() -> float:
        stop = asyncio.Event()
        running = asyncio.create_task(loop.run(stop))
        while consumer.polls < after_polls and not running.done():
            await asyncio.sleep(0.01)
        await asyncio.sleep(settle_s)
        stopped_at = time.monotonic()
        stop.set()
        await asyncio.wait_for(running, 30)
        return time.monotonic() - stopped_at

    return asyncio.run(scenario())


@pytest.mark.usefixtures("quick_poll_backoff")
def test_a_stop_during_an_outage_ends_the_loop_without_an_error() -> None:
    consumer = _BrokerGoneAtPollConsumer(KafkaConnectionError("111 ECONNREFUSED"), failures=10**9)
    _stop_in_an_outage(consumer, after_polls=3)
    assert consumer.closed_while_polling is False


def test_a_stop_during_a_long_poll_backoff_ends_the_loop_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backoff between polls of an outage waits for ``stop`` too: a SIGTERM is not held for its length."""
    monkeypatch.setattr(consumer_loop, "POLL_BACKOFF", Backoff(first_s=60.0, cap_s=60.0, jitter=0.0))
    consumer = _BrokerGoneAtPollConsumer(KafkaConnectionError("111 ECONNREFUSED"), failures=10**9)
    assert _stop_in_an_outage(consumer, after_polls=1, settle_s=0.1) < 5  # stopped in the 60 s backoff
    assert consumer.polls == 1


def test_an_error_the_broker_answered_with_still_ends_the_loop() -> None:
    """Waiting does not fix an authorization error: it leaves the loop (and the command exits with it)."""
    consumer = _BrokerGoneAtPollConsumer(GroupAuthorizationFailedError("ordernotify"), failures=1)
    with pytest.raises(GroupAuthorizationFailedError):
        _run_loop(consumer)
    assert consumer.polls == 1
