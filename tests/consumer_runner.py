"""Run a real consumer (``consumers.service.run_consumer``) in a background thread during a test."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from types import TracebackType

from consumers.service import RunningConsumer, run_consumer
from ordernotify.config import Settings


class ConsumerRunner:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._running: RunningConsumer | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(run_consumer(self._settings, self._stop, on_start=self._started))
        except BaseException as exc:  # surfaced in stop()
            self._error = exc

    def _started(self, running: RunningConsumer) -> None:
        self._running = running

    @property
    def running(self) -> RunningConsumer:
        assert self._running is not None, "consumer not started"
        return self._running

    def start(self, timeout_s: float = 30.0) -> ConsumerRunner:
        """Start, and return once the consumer's parts exist (it may still be joining the group)."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while self._running is None:
            if self._error is not None:
                raise self._error
            if time.monotonic() > deadline:
                raise TimeoutError("consumer did not start")
            time.sleep(0.02)
        return self

    def wait_handled(self, count: int, timeout_s: float = 30.0) -> None:
        """Until ``count`` records were decided and committed and the outbox has drained (every e-mail due
        now sent or dead-lettered)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._error is not None:
                raise self._error
            if (self._running is not None and self._running.loop.handled >= count
                    and self._running.outbox_backlog() == 0):
                return
            time.sleep(0.05)
        handled = self._running.loop.handled if self._running else 0
        raise TimeoutError(f"consumer handled {handled} of {count} records within {timeout_s} s")

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Until no window is pending and the outbox has drained (every held e-mail sent or suppressed)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._error is not None:
                raise self._error
            running = self._running
            if running is not None and running.pending_count() == 0 and running.outbox_backlog() == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"windows still pending after {timeout_s} s")

    def not_sent_when(self, settled: Callable[[dict[str, int]], bool], timeout_s: float = 10.0) -> dict[str, int]:
        """The consumer's news not e-mailed, by reason, once ``settled`` says so (or at the timeout: the caller
        asserts). The delivering side counts an e-mail not sent on its event loop just after the store recorded
        it, so an outbox seen drained by :meth:`wait_idle` can still be a moment ahead of the count."""
        deadline = time.monotonic() + timeout_s
        while True:
            counts = self.running.not_sent_by_reason()
            if settled(counts) or time.monotonic() > deadline:
                return counts
            time.sleep(0.05)

    def stop(self, timeout_s: float = 30.0) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError("consumer did not stop in time")
        self._loop.close()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> ConsumerRunner:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
