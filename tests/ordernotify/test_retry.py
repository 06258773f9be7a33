"""The one retry helper: retriable errors are retried with capped, jittered backoff; others raised."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ordernotify.errors import ConfigError, OrderNotifyError
from ordernotify.retry import Backoff, retry_async, retry_blocking

FAST = Backoff(first_s=0.001, cap_s=0.002)


class _Flaky(OrderNotifyError):
    retriable = True


def test_delays_grow_to_the_cap_and_jitter_only_shortens_them() -> None:
    backoff = Backoff(first_s=0.5, cap_s=4.0, factor=2.0, jitter=0.25)
    for attempt, full in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (10, 4.0), (500, 4.0)]:
        delays = [backoff.delay(attempt) for _ in range(50)]
        assert all(0.75 * full <= d <= full for d in delays)
    assert len({backoff.delay(3) for _ in range(20)}) > 1  # jittered


def test_async_retries_retriable_errors_and_reports_them_then_recovery() -> None:
    calls, heard = [0], []

    async def call() -> str:
        calls[0] += 1
        if calls[0] < 3:
            raise _Flaky("store away")
        return "ok"

    assert asyncio.run(retry_async(call, "test", FAST, on_error=heard.append)) == "ok"
    assert calls[0] == 3
    assert [type(e) for e in heard] == [_Flaky, _Flaky, type(None)]


def test_async_raises_a_non_retriable_error_at_once() -> None:
    calls = [0]

    async def call() -> None:
        calls[0] += 1
        raise ConfigError("bad")

    with pytest.raises(ConfigError):
        asyncio.run(retry_async(call, "test", FAST))
    assert calls[0] == 1


def test_async_stop_ends_the_wait_with_the_last_error() -> None:
    async def main() -> None:
        stop = asyncio.Event()

        async def call() -> None:
            stop.set()
            raise _Flaky("down")

        await retry_async(call, "test", Backoff(first_s=60), stop=stop)

    with pytest.raises(_Flaky):
        asyncio.run(main())


def test_blocking_retries_and_stops() -> None:
    calls = [0]

    def call() -> int:
        calls[0] += 1
        if calls[0] < 4:
            raise _Flaky("x")
        return calls[0]

    assert retry_blocking(call, "test", FAST) == 4
    stop = threading.Event()
    stop.set()
    with pytest.raises(_Flaky):
        retry_blocking(lambda: (_ for _ in ()).throw(_Flaky("y")), "test", Backoff(first_s=60), stop=stop)
