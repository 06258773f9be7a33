"""Which offsets are safe to commit: per partition, everything below the first record not yet done.

Records of different orders finish out of order (they are sent concurrently);
a commit must never pass a record whose e-mail is still in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from kafka import TopicPartition


class OffsetTracker:
    """Thread-safe: records finish on the event loop while a rebalance (in the poll thread) commits."""

    def __init__(self) -> None:
        self._pending: dict[TopicPartition, dict[int, bool]] = {}
        self._lock = threading.Lock()

    def started(self, tp: TopicPartition, offset: int) -> None:
        with self._lock:
            self._pending.setdefault(tp, {})[offset] = False

    def done(self, tp: TopicPartition, offset: int) -> None:
        with self._lock:
            offsets = self._pending.get(tp)
            if offsets is not None and offset in offsets:  # not if the partition was revoked meanwhile
                offsets[offset] = True

    def committable(self, partitions: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Next offset to commit per partition (all, or the named ones), dropping the finished prefix."""
        with self._lock:
            return self._committable(list(self._pending) if partitions is None else set(partitions))

    def _committable(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        result: dict[TopicPartition, int] = {}
        for tp in partitions:
            offsets = self._pending.get(tp)
            if offsets is None:
                continue
            next_offset = None
            for offset in sorted(offsets):
                if not offsets[offset]:
                    break
                next_offset = offset + 1
                del offsets[offset]
            if next_offset is not None:
                result[tp] = next_offset
        return result

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """After a rebalance took these partitions away: their work is someone else's now."""
        with self._lock:
            for tp in partitions:
                self._pending.pop(tp, None)

    def in_flight(self) -> int:
        with self._lock:
            return sum(1 for offsets in self._pending.values() for done in offsets.values() if not done)
