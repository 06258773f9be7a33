"""The published examples and the fingerprint table in schemas/README.md must stay true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from producers.exceptions import InputError
from producers.json_lines import parse_line
from schemas.codec import EventCodec, PreferencesCodec
from schemas.events import CustomerPreferences, EventType, OrderEvent
from schemas.registry import default_registry
from schemas.validation import validate_event

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
GOOD = (SCHEMAS / "examples" / "events.jsonl").read_text(encoding="utf-8").splitlines()
BAD = (SCHEMAS / "examples" / "bad.jsonl").read_text(encoding="utf-8").splitlines()
README = (SCHEMAS / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("number", range(1, len(GOOD) + 1))
def test_every_example_line_parses_validates_and_encodes(number: int) -> None:
    value = parse_line(GOOD[number - 1], number)
    if isinstance(value, OrderEvent):
        validate_event(value)
        assert EventCodec().decode(EventCodec().encode(value)) == value
    else:
        assert PreferencesCodec().decode(PreferencesCodec().encode(value)) == value


def test_examples_cover_every_event_type_and_preferences() -> None:
    values = [parse_line(line) for line in GOOD]
    assert {v.event_type for v in values if isinstance(v, OrderEvent)} == set(EventType)
    assert any(isinstance(v, CustomerPreferences) for v in values)


@pytest.mark.parametrize(
    ("number", "field", "problem"),
    [
        (1, "", "not valid JSON"),
        (2, "payload.tracking_number", "is required"),
        (3, "payload.items[0].quantity", "must be positive, not -1"),
        (4, "event_type", "unknown value 'ORDER_LOST'"),
        (5, "payload.total", "total 58.87 \u2260 subtotal 53.97 \u2212 discount 0.00 + shipping_cost 4.90 + tax 9.40 "
                             "= 68.27 EUR (tax added: prices_include_tax is false); "
                             "with prices_include_tax true it would add up"),
    ],
)
def test_every_bad_line_fails_naming_the_problem(number: int, field: str, problem: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_line(BAD[number - 1], number)
    assert caught.value.line_number == number
    assert caught.value.field == field
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"line {number}: ")


def test_bad_file_has_exactly_the_documented_cases() -> None:
    assert len(BAD) == 5


def test_readme_examples_are_the_example_file() -> None:
    for line in GOOD:
        assert line in README


def test_readme_fingerprints_match_the_schemas() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (\d+) \| `[^`]+` \| `([0-9a-f]{16})` \| `0x([0-9a-f]+)` \|$", README, re.M)
    listed = {(subject, int(version)): (wire, crc) for subject, version, wire, crc in rows}
    registry = default_registry()
    computed = {
        (v.subject, v.version): (v.fingerprint.hex(), f"{int.from_bytes(v.fingerprint, 'little'):x}")
        for subject in ("order_event", "customer_preferences", "notification_sent", "customer_suppression")
        for v in registry.versions(subject)
    }
    assert listed == computed
