"""The consumer loop closes its kafka-python consumer only once no worker thread of its own is inside it.

A poll runs in a worker thread, which cancelling the loop's task does not end; closing the consumer meanwhile
closes its sockets under that poll (ordernotify/kafka_closing.py has the rest of the story)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RebalanceInProgressError

from consumers.decide.consumer_loop import ConsumerLoop
from ordernotify.config import Settings


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
                                   RebalanceInProgressError()],
                         ids=lambda e: type(e).__name__)
def test_a_commit_the_broker_did_not_answer_is_left_to_redelivery_not_a_reason_to_stop(error: Exception) -> None:
    """Before, the error left the loop and the whole consumer exited (\"cannot reach the Kafka broker\") when the
    broker was killed while a batch was being committed; the records are redelivered instead, and deduplicated."""
    consumer = _BrokerGoneAtCommitConsumer(error)
    loop = ConsumerLoop(Settings(), decider=None, consumer=consumer, dead_letters=None)  # type: ignore[arg-type]
    asyncio.run(loop._commit({TopicPartition("orders.events", 0): 8}))
    assert consumer.commits == 1
