"""Notice a consumer that is alive but no longer gets anywhere, and have it restarted.

A known failure mode of Kafka clients after broker trouble: the process runs,
answers ``/healthz``, but a poll or commit never returns (or never succeeds)
while records wait. Progress here is an offset commit, or a lag of zero (an
idle consumer has nothing to commit). When there was none for
``stuck_after_s`` while the last measured lag was not zero, the watchdog
reports it (``/readyz`` check ``not_stuck``, gauge ``ordernotify_stuck``) and
asks the process to stop; the ``consume`` command then exits with
:data:`EXIT_STUCK` so that the orchestrator (Kubernetes ``restartPolicy``,
Compose ``restart: unless-stopped``) starts a fresh one. What was not committed
is delivered again and deduplicated by the state store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable

from consumers.health import ConsumerHealth
from ordernotify.metrics import Metrics

log = logging.getLogger(__name__)

EXIT_STUCK = 3


class Watchdog:
    def __init__(self, stuck_after_s: float, health: ConsumerHealth, metrics: Metrics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stuck_after_s = stuck_after_s
        self._health = health
        self._metrics = metrics
        self._clock = clock
        self._progress_at = clock()
        self._lag: int | None = None
        self.stuck = False

    # -- called by the consumer loop (event loop or poll thread: plain attribute writes)
    def committed(self) -> None:
        self._progress_at = self._clock()

    def lag_measured(self, records: int) -> None:
        self._lag = records
        if records == 0:
            self._progress_at = self._clock()

    # -- the check
    def check(self) -> bool:
        """True once stuck: no progress for ``stuck_after_s`` while the last known lag was not zero."""
        if self.stuck:
            return True
        silent_s = self._clock() - self._progress_at
        if not self._lag or silent_s < self._stuck_after_s:
            return False
        self.stuck = True
        self._health.stuck_detail = f"no offset commit for {silent_s:.0f} s while {self._lag} records wait"
        self._metrics.stuck.set(1)
        log.error("consumer stuck: %s; stopping so that it is restarted", self._health.stuck_detail)
        return True

    async def run(self, stop: asyncio.Event, on_stuck: Callable[[], None] | None = None,
                  tick_s: float = 1.0) -> None:
        """Check every tick until ``stop``; when stuck, call ``on_stuck`` and set ``stop``."""
        while not stop.is_set():
            if self.check():
                if on_stuck is not None:
                    on_stuck()
                stop.set()
                return
            try:
                await asyncio.wait_for(stop.wait(), tick_s)
            except TimeoutError:
                pass


def exit_if_still_running(after_s: float) -> None:
    """For the ``consume`` command: a hung poll or commit runs in a worker thread and cannot be
    cancelled, so if the orderly shutdown has not ended the process ``after_s`` later, end it."""
    timer = threading.Timer(after_s, _exit_hung)
    timer.daemon = True
    timer.start()


def _exit_hung() -> None:  # pragma: no cover - ends the process
    log.error("shutdown of the stuck consumer hangs; exiting with %d", EXIT_STUCK)
    logging.shutdown()
    os._exit(EXIT_STUCK)
