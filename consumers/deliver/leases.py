"""Which outbox entries this dispatcher holds, and until when: the claims it must renew, and those it lost.

A claim's lease runs out unless renewed. The renewer (the dispatcher's upkeep) renews every held
entry at once and learns which ids another dispatcher has taken meanwhile (its own lease had run out:
a stalled store, a paused process); those are dropped here, so that this process neither sends them
nor records an outcome over the new holder's.
"""

from __future__ import annotations

from collections.abc import Iterable


class Leases:
    def __init__(self, lease_s: float) -> None:
        self.lease_s = lease_s
        self._until: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._until)

    def __contains__(self, notification_id: object) -> bool:
        return notification_id in self._until

    def ids(self) -> list[str]:
        return sorted(self._until)

    def took(self, notification_ids: Iterable[str], now: float) -> None:
        for notification_id in notification_ids:
            self._until[notification_id] = now + self.lease_s

    def renewed(self, asked: Iterable[str], kept: set[str], now: float) -> set[str]:
        """Record a renewal of ``asked`` that kept ``kept``; returns the ids lost to another holder."""
        lost = set()
        for notification_id in asked:
            if notification_id not in self._until:
                continue  # let go meanwhile
            if notification_id in kept:
                self._until[notification_id] = now + self.lease_s
            else:
                lost.add(notification_id)
                self._until.pop(notification_id, None)
        return lost

    def safe_to_send(self, notification_id: str, now: float, margin_s: float) -> bool:
        """Held, with at least ``margin_s`` of the lease left: long enough for one SMTP transaction."""
        until = self._until.get(notification_id)
        return until is not None and until - now >= margin_s

    def let_go(self, notification_id: str) -> None:
        self._until.pop(notification_id, None)
