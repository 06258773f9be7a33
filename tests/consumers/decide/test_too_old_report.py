"""The too_old report: counted, at most one line a minute, no personal data (fake clock)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from consumers.decide.too_old_report import TooOldReport, describe_age


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "consumers.decide.too_old_report"]


def test_first_skip_is_logged_at_once_then_at_most_once_a_minute_with_the_count_since(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    report = TooOldReport(72, clock=clock)
    report.skipped([timedelta(days=9), timedelta(days=5, hours=2)])
    assert _lines(caplog) == ["skipped 2 events older than 72 h (max_event_age_h), not e-mailed; newest was 5 d old"]
    assert caplog.records[-1].levelno == logging.WARNING

    for _ in range(10):  # ten more batches within the minute: counted, not logged
        clock.now += 5
        report.skipped([timedelta(hours=80)])
    report.skipped([])
    assert len(_lines(caplog)) == 1

    clock.now += 10  # 60 s after the first line
    report.skipped([timedelta(hours=75)])
    assert _lines(caplog)[1] == "skipped 11 events older than 72 h (max_event_age_h), not e-mailed; newest was 75 h old"
    assert report.total == 13

    clock.now += 120  # nothing skipped since: a quiet stream logs nothing
    report.skipped([])
    assert len(_lines(caplog)) == 2
    report.skipped([timedelta(hours=100)])  # the next skip after a quiet minute is logged at once
    assert _lines(caplog)[2] == "skipped 1 event older than 72 h (max_event_age_h), not e-mailed; newest was 4 d old"


@pytest.mark.parametrize(
    ("age", "said"),
    [(timedelta(minutes=45), "45 min"), (timedelta(hours=73), "73 h"), (timedelta(hours=95), "95 h"),
     (timedelta(days=4), "4 d"), (timedelta(days=400), "400 d")],
)
def test_ages_read_as_a_person_says_them(age: timedelta, said: str) -> None:
    assert describe_age(age) == said
