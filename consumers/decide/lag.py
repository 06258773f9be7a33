"""Consumer lag: how many records of each partition are not yet handled.

Lag is ``end offset - position``: the log end (next offset to be written)
minus the offset this consumer will read next -- or, for a group member that
has not fetched a partition yet, minus the group's committed offset (no
commit: the partition's beginning, as ``auto_offset_reset=earliest`` would).

Known limit of the dev broker: Tansu's ``ListOffsets`` answer (hence
kafka-python's ``end_offsets``) is wrong when a partition's last batch
holds several records: it answers one past that batch's base offset, not the
log end (e.g. 3 instead of 5 after two single records and a batch of three),
so lag reads low there. The code is right for Apache
Kafka; tests that assert exact lag values on the dev broker skip with that
reason instead of bending this code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from kafka import TopicPartition

log = logging.getLogger(__name__)


def partition_lag(consumer: Any, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
    """Lag per partition for a kafka-python ``KafkaConsumer``; never negative.

    Uses ``position`` for partitions the consumer has assigned (what the running
    consumer really has left), the committed offset otherwise (what a restart
    would have left: the view of ``ordernotify status``).
    """
    tps = list(partitions)
    if not tps:
        return {}
    ends: dict[TopicPartition, int] = consumer.end_offsets(tps)
    assigned = set(consumer.assignment() or ())
    missing = [tp for tp in tps if tp not in assigned and consumer.committed(tp) is None]
    beginnings: dict[TopicPartition, int] = consumer.beginning_offsets(missing) if missing else {}
    lag: dict[TopicPartition, int] = {}
    for tp in tps:
        end = ends.get(tp)
        if end is None:
            continue
        current = _current_offset(consumer, tp, assigned, beginnings)
        lag[tp] = max(0, end - current)
    return lag


def _current_offset(consumer: Any, tp: TopicPartition, assigned: set[TopicPartition],
                    beginnings: dict[TopicPartition, int]) -> int:
    if tp in assigned:
        return int(consumer.position(tp))
    committed = consumer.committed(tp)
    if committed is not None:
        return int(committed)
    return int(beginnings.get(tp, 0))


def lag_by_topic_partition(lag: dict[TopicPartition, int]) -> dict[tuple[str, int], int]:
    """The shape :meth:`ordernotify.metrics.Metrics.set_lag` takes."""
    return {(tp.topic, tp.partition): records for tp, records in lag.items()}
