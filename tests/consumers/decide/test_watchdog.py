"""The stuck-consumer watchdog, on a clock the test controls."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from consumers.decide.watchdog import Watchdog
from consumers.health import ConsumerHealth
from ordernotify.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _watchdog() -> tuple[Watchdog, Clock, ConsumerHealth, Metrics]:
    clock, health, metrics = Clock(), ConsumerHealth(), Metrics(CollectorRegistry())
    return Watchdog(60.0, health, metrics, clock=clock), clock, health, metrics


def test_no_commit_for_too_long_while_records_wait_is_stuck_and_reported() -> None:
    watchdog, clock, health, metrics = _watchdog()
    watchdog.lag_measured(12)
    clock.now += 59
    assert not watchdog.check()
    clock.now += 2
    assert watchdog.check()
    assert not health.report().ready
    assert "12 records wait" in health.report().details["not_stuck"]
    assert metrics.registry.get_sample_value("ordernotify_stuck") == 1


def test_commits_and_an_idle_consumer_are_progress() -> None:
    watchdog, clock, health, metrics = _watchdog()
    watchdog.lag_measured(5)
    for _ in range(5):
        clock.now += 50
        watchdog.committed()
        assert not watchdog.check()
    watchdog.lag_measured(0)
    clock.now += 3600  # nothing to do, nothing committed: not stuck
    assert not watchdog.check()
    assert health.report().details.get("not_stuck") is None
    assert metrics.registry.get_sample_value("ordernotify_stuck") in (None, 0)


async def test_when_stuck_it_calls_back_and_stops_the_consumer() -> None:
    watchdog, clock, _, _ = _watchdog()
    watchdog.lag_measured(1)
    clock.now += 61
    stop, called = asyncio.Event(), []
    await asyncio.wait_for(watchdog.run(stop, on_stuck=lambda: called.append(True), tick_s=0.01), 1)
    assert stop.is_set() and called == [True]
