"""Create the project's topics if they are missing (idempotent)."""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from ordernotify.config import Settings
from ordernotify.kafka_closing import close_admin
from ordernotify.reachability import reaching_broker

log = logging.getLogger(__name__)


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Each topic's configuration: the events topic takes records up to ``--max-record-bytes``, and the
    dead-letter topic takes each of them again with the headers a dead letter adds."""
    return {
        settings.events_topic: {"max.message.bytes": str(settings.max_record_bytes)},
        settings.preferences_topic: {"cleanup.policy": "compact"},
        settings.suppressions_topic: {"cleanup.policy": "compact"},
        settings.sent_topic: {},
        settings.dlq_topic: {"max.message.bytes": str(settings.max_dead_letter_bytes)},
    }


def ensure_topics(settings: Settings, partitions: int = 6, replication_factor: int = 1) -> None:
    """Create events, preferences and suppressions (compacted), communications-log and dead-letter topics.

    Topics that exist are left as they are, configuration included."""
    wanted = topic_configs(settings)
    with reaching_broker(settings):
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
        close_admin(admin)
