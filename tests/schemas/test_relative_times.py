"""Times relative to now in JSON input: the forms, their resolution, and what is refused."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from schemas.events import OrderEvent
from schemas.exceptions import EventValidationError
from schemas.records import event_from_record
from schemas.relative_times import reference_now, resolve_date, resolve_timestamp
from tests.schemas.test_examples import GOOD

NOW = datetime(2026, 12, 2, 23, 30, 15, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("now-45m", NOW - timedelta(minutes=45)),
        ("now+1h", NOW + timedelta(hours=1)),
        ("now-1d2h30m", NOW - timedelta(days=1, hours=2, minutes=30)),
        ("now-90s", NOW - timedelta(seconds=90)),
    ],
)
def test_timestamp_forms(text: str, expected: datetime) -> None:
    assert resolve_timestamp(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("today", date(2026, 12, 2)), ("today+3d", date(2026, 12, 5)), ("today-1d", date(2026, 12, 1)),
     ("today+30d", date(2027, 1, 1))],
)
def test_date_forms_count_from_the_utc_date(text: str, expected: date) -> None:
    assert resolve_date(text, NOW) == expected


@pytest.mark.parametrize("text", ["now-", "now-2", "now-2x", "now 2h", "now-2h-", "nowadays", "now-1w"])
def test_malformed_timestamps_are_not_resolved(text: str) -> None:
    assert resolve_timestamp(text, NOW) is None


@pytest.mark.parametrize("text", ["today+3", "today+3h", "today-", "todays"])
def test_malformed_dates_are_not_resolved(text: str) -> None:
    assert resolve_date(text, NOW) is None


def test_reference_now_keeps_whole_milliseconds_as_avro_does() -> None:
    assert reference_now().microsecond % 1000 == 0


def _placed(**changes: object) -> dict[str, object]:
    """The example ORDER_PLACED with absolute times, then ``changes``."""
    data: dict[str, object] = json.loads(GOOD[0])
    data["payload"]["delivery_estimate"] = {"earliest": "2026-12-04", "latest": "2026-12-07"}  # type: ignore[index]
    data.update(changes)
    return data


def test_record_resolves_relative_times_only_when_given_now() -> None:
    event = event_from_record(_placed(occurred_at="now-45m"), NOW)
    assert event.occurred_at == NOW - timedelta(minutes=45)
    with pytest.raises(EventValidationError) as caught:
        event_from_record(_placed(occurred_at="now-45m"))  # decoding Avro or plain records: absolute only
    assert caught.value.field == "occurred_at"


def test_malformed_relative_time_names_the_field_and_the_forms() -> None:
    with pytest.raises(EventValidationError) as caught:
        event_from_record(_placed(occurred_at="now-45 minutes"), NOW)
    assert caught.value.field == "occurred_at"
    assert "now-2h" in caught.value.problem


def test_every_example_is_fresh_whenever_it_is_read() -> None:
    """The README's example must produce e-mails whenever it is run: never older than --max-event-age-h."""
    from producers.json_lines import parse_lines

    now = reference_now()
    values = [line.value for line in parse_lines(GOOD, now)]
    events = [v for v in values if isinstance(v, OrderEvent)]
    assert len(events) == 9
    for event in events:
        assert timedelta(0) <= now - event.occurred_at <= timedelta(hours=1)
    placed = events[0]
    assert placed.payload.delivery_estimate is not None  # type: ignore[union-attr]
    assert placed.payload.delivery_estimate.earliest > now.date()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("occurred_at", "now-999999999d"),  # past year 1: the datetime arithmetic overflows
        ("occurred_at", "now+99999999999999999999d"),  # too many days for a timedelta
        ("occurred_at", "now-" + "9" * 5000 + "s"),  # past Python's 4300-digit limit for int()
        ("payload.delivery_estimate.latest", "today+99999999d"),  # past year 9999
        ("payload.delivery_estimate.latest", "today-" + "9" * 5000 + "d"),
    ],
    ids=["timestamp-past-year-1", "timestamp-huge-days", "timestamp-5000-digits", "date-past-year-9999",
         "date-5000-digits"],
)
def test_an_offset_too_large_for_a_date_is_refused_naming_the_field(field: str, text: str) -> None:
    data = _placed()
    if field == "occurred_at":
        data["occurred_at"] = text
    else:
        data["payload"]["delivery_estimate"]["latest"] = text  # type: ignore[index]
    with pytest.raises(EventValidationError) as caught:
        event_from_record(data, NOW)
    assert caught.value.field == field
    assert "out of range" in caught.value.problem
    assert len(str(caught.value)) < 200  # one readable line, not thousands of digits
