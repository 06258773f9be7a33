"""Create the project's topics if they are missing (idempotent)."""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from ordernotify.config import Settings

log = logging.getLogger(__name__)


def ensure_topics(settings: Settings, partitions: int = 6, replication_factor: int = 1) -> None:
    """Create events, preferences (compacted), communications-log and dead-letter topics."""
    wanted = {
        settings.events_topic: {},
        settings.preferences_topic: {"cleanup.policy": "compact"},
        settings.sent_topic: {},
        settings.dlq_topic: {},
    }
    admin = KafkaAdminClient(**settings.kafka_client_options(), client_id="ordernotify-admin")
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, partitions, replication_factor, topic_configs=configs)
            for name, configs in wanted.items()
            if name not in existing
        ]
        for topic in missing:
            try:
                admin.create_topics([topic])
                log.info("created topic %s with %d partitions", topic.name, partitions)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
