"""Which offsets are safe to commit: per partition, everything below the first record not yet done.

Records of different orders finish out of order (they are sent concurrently);
a commit must never pass a record whose e-mail is still in flight.
"""

from __future__ import annotations

from kafka import TopicPartition


class OffsetTracker:
    def __init__(self) -> None:
        self._pending: dict[TopicPartition, dict[int, bool]] = {}

    def started(self, tp: TopicPartition, offset: int) -> None:
        self._pending.setdefault(tp, {})[offset] = False

    def done(self, tp: TopicPartition, offset: int) -> None:
        self._pending[tp][offset] = True

    def committable(self) -> dict[TopicPartition, int]:
        """Next offset to commit per partition, dropping the finished prefix it covers."""
        result: dict[TopicPartition, int] = {}
        for tp, offsets in self._pending.items():
            next_offset = None
            for offset in sorted(offsets):
                if not offsets[offset]:
                    break
                next_offset = offset + 1
                del offsets[offset]
            if next_offset is not None:
                result[tp] = next_offset
        return result

    def forget(self, partitions: set[TopicPartition]) -> None:
        """After a rebalance took these partitions away: their work is someone else's now."""
        for tp in partitions:
            self._pending.pop(tp, None)

    def in_flight(self) -> int:
        return sum(1 for offsets in self._pending.values() for done in offsets.values() if not done)
