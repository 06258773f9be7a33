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
    attempt = 0
    while True:
        try:
            result = await call()
        except OrderNotifyError as exc:
            if not exc.retriable:
                raise
            if on_error is not None:
                on_error(exc)
            delay = backoff.delay(attempt)
            attempt += 1
            log.warning("%s failed (attempt %d, retry in %.1f s): %s", what, attempt, delay, exc)
            if stop is None:
                await asyncio.sleep(delay)
            else:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    continue
                raise
            continue
        if attempt and on_error is not None:
            on_error(None)
        return result


def retry_blocking(
    call: Callable[[], T],
    what: str,
    backoff: Backoff = Backoff(),
    on_error: Callable[[OrderNotifyError | None], None] | None = None,
    stop: threading.Event | None = None,
) -> T:
    """The same for a worker thread: ``time.sleep`` between attempts, or ``stop.wait`` if given."""
    attempt = 0
    while True:
        try:
            result = call()
        except OrderNotifyError as exc:
            if not exc.retriable:
                raise
            if on_error is not None:
                on_error(exc)
            delay = backoff.delay(attempt)
            attempt += 1
            log.warning("%s failed (attempt %d, retry in %.1f s): %s", what, attempt, delay, exc)
            if stop is None:
                time.sleep(delay)
            elif stop.wait(delay):
                raise
            continue
        if attempt and on_error is not None:
            on_error(None)
        return result
