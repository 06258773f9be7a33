"""JSON lines -> events/preferences, or an error naming line, field and problem."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from producers.exceptions import InputError
from producers.json_lines import parse_line, parse_lines
from schemas.events import CustomerPreferences, EventType, OrderEvent

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples" / "events.jsonl"
LINES = EXAMPLES.read_text(encoding="utf-8").splitlines()
PLACED = json.loads(LINES[0])


def _line(data: object) -> str:
    return json.dumps(data, ensure_ascii=False)


def _with(path: str, value: object) -> str:
    data = json.loads(LINES[0])
    *parents, last = path.split(".")
    target = data
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return _line(data)


_DELETE = object()


def test_stream_yields_one_result_per_non_blank_line_with_line_numbers() -> None:
    text = LINES[0] + "\n\n   \n" + "{oops\n" + LINES[-1] + "\n"
    parsed = list(parse_lines(io.StringIO(text)))
    assert [p.line_number for p in parsed] == [1, 4, 5]
    assert isinstance(parsed[0].value, OrderEvent) and parsed[0].ok
    assert isinstance(parsed[1].value, InputError) and not parsed[1].ok
    assert isinstance(parsed[2].value, CustomerPreferences)


def test_event_line() -> None:
    event = parse_line(LINES[0])
    assert isinstance(event, OrderEvent)
    assert event.event_type is EventType.ORDER_PLACED
    assert event.customer.display_name == "Zoë Hartley"


def test_preferences_line() -> None:
    prefs = parse_line('{"preferences": {"customer_id": "c-1", "informational_updates": true,'
                       ' "updated_at": "2026-11-23T08:30:00+01:00"}}')
    assert isinstance(prefs, CustomerPreferences)
    assert prefs.informational_updates is True
    assert prefs.updated_at.utcoffset() is not None and prefs.updated_at.hour == 7


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        pytest.param("{not json", "", "not valid JSON", id="malformed"),
        pytest.param('{"a": NaN}', "", "not valid JSON", id="nan"),
        pytest.param('\ufeff{"event_type": "ORDER_PLACED"}', "", "not valid JSON: Unexpected UTF-8 BOM",
                     id="byte-order-mark"),  # a file saved by an editor that starts it with one
        pytest.param("[1, 2]", "", "must be a JSON object", id="array"),
        pytest.param('"ORDER_PLACED"', "", "must be a JSON object", id="string"),
        pytest.param("{}", "event_type", "is required", id="empty-object"),
        pytest.param(_with("payload.total", _DELETE), "payload.total", "is required", id="missing-field"),
        pytest.param(_with("payload.items.0.quantity", -1), "payload.items[0].quantity", "must be positive",
                     id="negative-quantity"),
        pytest.param(_with("payload.items.0.quantity", 1.5), "payload.items[0].quantity", "must be an integer",
                     id="fractional-quantity"),
        pytest.param(_with("event_type", "ORDER_LOST"), "event_type", "unknown value 'ORDER_LOST'",
                     id="unknown-event-type"),
        pytest.param(_with("occurred_at", "2026-11-23T09:00:00"), "occurred_at", "needs a UTC offset",
                     id="naive-timestamp"),
        pytest.param(_with("surprise", 1), "surprise", "is not a field", id="unknown-field"),
        pytest.param(_with("customer.email", "a@example.org, b@example.com"), "customer.email",
                     "is not a plain e-mail address", id="two-addresses"),
        pytest.param('{"preferences": {"customer_id": "c-1"}}', "preferences.informational_updates", "is required",
                     id="preferences-missing-field"),
        pytest.param('{"preferences": {"customer_id": "", "informational_updates": true, '
                     '"updated_at": "2026-11-23T08:30:00Z"}}', "preferences.customer_id", "must not be empty",
                     id="preferences-empty-id"),
        pytest.param('{"preferences": {}, "event_type": "ORDER_PLACED"}', "event_type", "only the key",
                     id="preferences-with-extra-key"),
    ],
)
def test_bad_lines_name_field_and_problem(text: str, field: str, problem: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_line(text, 7)
    assert caught.value.line_number == 7
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_error_never_echoes_an_email_address() -> None:
    with pytest.raises(InputError) as caught:
        parse_line(_with("customer.email", "alice@example.org(<bob@example.com>"), 1)
    assert "@" not in str(caught.value)


def test_relative_times_resolve_against_one_instant_for_the_whole_stream() -> None:
    from datetime import UTC, date, datetime, timedelta

    now = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    earlier = _with("occurred_at", "now-2h")
    later = _with("occurred_at", "now")
    prefs = '{"preferences": {"customer_id": "c-1", "informational_updates": true, "updated_at": "now-1d"}}'
    values = [p.value for p in parse_lines([earlier, later, prefs], now)]
    assert isinstance(values[0], OrderEvent) and isinstance(values[1], OrderEvent)
    assert values[0].occurred_at == now - timedelta(hours=2)
    assert values[1].occurred_at == now
    assert values[0].payload.delivery_estimate.earliest == date(2026, 12, 4)  # type: ignore[union-attr]
    assert isinstance(values[2], CustomerPreferences) and values[2].updated_at == now - timedelta(days=1)


def test_a_malformed_relative_time_is_refused_naming_the_field() -> None:
    with pytest.raises(InputError) as caught:
        parse_line(_with("occurred_at", "now minus 2h"), 3)
    assert caught.value.field == "occurred_at"
    assert "now-2h" in caught.value.problem


def test_a_relative_time_too_far_away_is_refused_naming_the_field() -> None:
    with pytest.raises(InputError) as caught:
        parse_line(_with("occurred_at", "now-999999999d"), 4)
    assert caught.value.line_number == 4
    assert caught.value.field == "occurred_at"
    assert "out of range" in caught.value.problem
