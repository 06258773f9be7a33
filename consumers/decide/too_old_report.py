"""Says in the log that events were suppressed as ``too_old``: counted, at most one line a minute.

Events older than ``--max-event-age-h`` are never e-mailed (a backlog after an outage, a replay, a
file of stale examples). That is by design, but a consumer that drops a whole stream without a word
looks broken; one WARNING line a minute says how many were skipped and how old the newest of them
was, so that an operator can tell a replay from a producer whose clock is wrong. No order, customer
or address is named: only counts and ages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import timedelta

log = logging.getLogger(__name__)

REPORT_INTERVAL_S = 60.0


class TooOldReport:
    """Counts ``too_old`` suppressions and logs them at most once per ``interval_s``.

    The first skip is logged at once; later ones are added up and logged with the first batch after
    the interval has passed.
    """

    def __init__(self, max_event_age_h: float, clock: Callable[[], float] = time.monotonic,
                 interval_s: float = REPORT_INTERVAL_S) -> None:
        self._max_event_age_h = max_event_age_h
        self._clock = clock
        self._interval_s = interval_s
        self._last_logged: float | None = None
        self._count = 0
        self._newest: timedelta | None = None
        self.total = 0  # since start, for tests and tools

    def skipped(self, ages: Iterable[timedelta]) -> None:
        """Note one batch's too-old events by their age (now minus occurred_at); log if it is time."""
        for age in ages:
            self._count += 1
            self.total += 1
            self._newest = age if self._newest is None else min(self._newest, age)
        if self._count == 0 or self._newest is None:
            return
        now = self._clock()
        if self._last_logged is not None and now - self._last_logged < self._interval_s:
            return
        log.warning("skipped %d event%s older than %g h (max_event_age_h), not e-mailed; newest was %s old",
                    self._count, "" if self._count == 1 else "s", self._max_event_age_h, describe_age(self._newest))
        self._last_logged = now
        self._count = 0
        self._newest = None


def describe_age(age: timedelta) -> str:
    """An age as a person says it: ``45 min``, ``80 h``, ``9 d``."""
    seconds = age.total_seconds()
    if seconds < 3600:
        return f"{max(0, int(seconds // 60))} min"
    if seconds < 4 * 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"
