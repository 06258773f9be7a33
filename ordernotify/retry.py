"""The one retry helper: capped exponential backoff with jitter, asking the error whether to try again.

Every loop that waits for something to come back (the state store, the dead-letter topic, the SMTP
server, the preferences topic) uses :class:`Backoff` for "when?" and the error's ``retriable`` for
"again?" (see :mod:`ordernotify.errors`), so no caller keeps its own list of error types or delays.
Jitter spreads the retries of several consumers that lost the same dependency at the same moment.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ordernotify.errors import OrderNotifyError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """``first_s * factor**attempt``, at most ``cap_s``, each delay shortened by up to ``jitter`` of itself."""

    first_s: float = 0.5
    cap_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        base = min(self.cap_s, self.first_s * self.factor ** min(attempt, 32))
        return base * (1.0 - self.jitter * random.random())


def is_retriable(exc: BaseException) -> bool:
    return isinstance(exc, OrderNotifyError) and exc.retriable


class _Attempts:
    """What both retry loops share: ask the error, report it, say how long to wait."""

    def __init__(self, what: str, backoff: Backoff,
                 on_error: Callable[[OrderNotifyError | None], None] | None) -> None:
        self._what, self._backoff, self._on_error, self.count = what, backoff, on_error, 0

    def failed(self, exc: OrderNotifyError) -> float:
        """The delay before the next attempt; re-raises an error that retrying cannot help."""
        if not exc.retriable:
            raise exc
        if self._on_error is not None:
            self._on_error(exc)
        delay = self._backoff.delay(self.count)
        self.count += 1
        log.warning("%s failed (attempt %d, retry in %.1f s): %s", self._what, self.count, delay, exc)
        return delay

    def succeeded(self) -> None:
        if self.count and self._on_error is not None:
            self._on_error(None)


async def retry_async(
    call: Callable[[], Awaitable[T]],
    what: str,
    backoff: Backoff = Backoff(),
    on_error: Callable[[OrderNotifyError | None], None] | None = None,
    stop: asyncio.Event | None = None,
) -> T:
    """Await ``call()`` until it succeeds; retriable errors are retried, others raised.

    ``on_error`` hears every retriable error and, once it succeeds after one, ``None`` (for readiness
    reports). With ``stop`` set while waiting, the last error is raised.
    """
    attempts = _Attempts(what, backoff, on_error)
    while True:
        try:
            result = await call()
        except OrderNotifyError as exc:
            delay = attempts.failed(exc)
            if stop is None:
                await asyncio.sleep(delay)
                continue
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                continue
            raise
        attempts.succeeded()
        return result


def retry_blocking(
    call: Callable[[], T],
    what: str,
    backoff: Backoff = Backoff(),
    on_error: Callable[[OrderNotifyError | None], None] | None = None,
    stop: threading.Event | None = None,
) -> T:
    """The same for a worker thread: ``time.sleep`` between attempts, or ``stop.wait`` if given."""
    attempts = _Attempts(what, backoff, on_error)
    while True:
        try:
            result = call()
        except OrderNotifyError as exc:
            delay = attempts.failed(exc)
            if stop is None:
                time.sleep(delay)
            elif stop.wait(delay):
                raise
            continue
        attempts.succeeded()
        return result
