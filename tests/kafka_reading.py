"""Read what landed on a topic (dead letters, communications log) straight from the broker."""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from ordernotify.config import Settings


def read_topic(settings: Settings, topic: str, expected: int, timeout_s: float = 15.0) -> list[Any]:
    """Every record of ``topic`` from the beginning, waiting until at least ``expected`` arrived."""
    consumer = KafkaConsumer(**settings.kafka_client_options(), enable_auto_commit=False, group_id=None)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for batch in consumer.poll(200).values():
                records.extend(batch)
            if len(records) >= expected and expected > 0:
                # one more short poll: anything beyond the expected count is a bug the test should see
                for batch in consumer.poll(300).values():
                    records.extend(batch)
                break
        return records
    finally:
        consumer.close()
