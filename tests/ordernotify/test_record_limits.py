"""One record limit, ``--max-record-bytes``, reaches every Kafka client and topic that must agree on it."""

from __future__ import annotations

from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from ordernotify.config import DEAD_LETTER_HEADROOM_BYTES, MiB, Settings, load_settings
from ordernotify.topics import topic_configs
from producers.event_producer import OrderEventProducer


def test_the_default_is_16_mib_and_dead_letters_get_the_headroom_on_top() -> None:
    settings = Settings()
    assert settings.max_record_bytes == 16 * MiB
    assert settings.max_dead_letter_bytes == 16 * MiB + DEAD_LETTER_HEADROOM_BYTES


@pytest.mark.parametrize("limit", [MiB, 16 * MiB, 64 * MiB])
def test_every_client_and_topic_follows_the_setting(limit: int) -> None:
    settings = load_settings(environ={"ORDERNOTIFY_MAX_RECORD_BYTES": str(limit)})
    dead_letter = limit + DEAD_LETTER_HEADROOM_BYTES

    events_producer = OrderEventProducer._producer_options(settings)
    assert events_producer["max_request_size"] == limit  # the platform's events, as the topic takes them
    assert settings.kafka_producer_options()["max_request_size"] == dead_letter  # dead letters, replays
    consumer = settings.kafka_consumer_options()
    assert (consumer["max_partition_fetch_bytes"], consumer["fetch_max_bytes"]) == (dead_letter, dead_letter)

    configs = topic_configs(settings)
    assert configs[settings.events_topic]["max.message.bytes"] == str(limit)
    assert configs[settings.dlq_topic]["max.message.bytes"] == str(dead_letter)
    assert configs[settings.preferences_topic] == {"cleanup.policy": "compact"}


@pytest.mark.parametrize(("client", "options"), [
    (KafkaProducer, Settings().kafka_producer_options()),
    (KafkaProducer, OrderEventProducer._producer_options(Settings())),
    (KafkaConsumer, Settings().kafka_consumer_options()),
])
def test_kafka_python_knows_the_option_names(client: Any, options: dict[str, Any]) -> None:
    assert set(options) - set(client.DEFAULT_CONFIG) == set()
