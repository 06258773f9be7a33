"""JSON lines (one object per line) -> order events and customer preferences.

The shape of an order-event line is exactly the JSON form of the Avro record
(:func:`schemas.records.to_json_record`): timestamps as ISO 8601 with an
offset, dates as ``YYYY-MM-DD``, money as integer minor units, the payload as
the bare record matching ``event_type``.

Discriminator: a line whose object has the single top-level key
``"preferences"`` is a preferences update, ``{"preferences": {"customer_id": ...,
"informational_updates": false, "updated_at": "..."}}``; every other line is an
order event (and so needs ``event_type``). The wrapper keeps the two shapes
apart without guessing from which fields happen to be present.

Timestamps and dates may be written relative to the moment the stream is
read (``"now-2h"``, ``"today+3d"``, :mod:`schemas.relative_times`), so that a
file of example or test events never goes stale; one instant serves the whole
stream, so its lines keep their spacing. Event ids stay as written: emitting
the same file again re-sends the same events, which a consumer drops as
duplicates while it remembers their ids.

Blank lines are skipped. Every other line yields exactly one
:class:`ParsedLine`, carrying either the model object or an
:class:`InputError` naming the line number, the field and the problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from producers.exceptions import InputError
from schemas import json_text
from schemas.events import CustomerPreferences, OrderEvent
from schemas.exceptions import EventValidationError
from schemas.records import event_from_record, preferences_from_record
from schemas.relative_times import reference_now
from schemas.validation import validate_event

PREFERENCES_KEY = "preferences"


@dataclass(frozen=True)
class ParsedLine:
    """One input line: an event, a preferences update, or the reason it is neither."""

    line_number: int
    value: OrderEvent | CustomerPreferences | InputError

    @property
    def ok(self) -> bool:
        return not isinstance(self.value, InputError)


# How a byte that is not UTF-8 arrives when the text is read with errors="surrogateescape".
_UNDECODABLE = re.compile("[\udc80-\udcff]")


def parse_lines(lines: Iterable[str], now: datetime | None = None, first_line_number: int = 1
                ) -> Iterator[ParsedLine]:
    """Parse a text stream (or any iterable of lines), numbering lines from ``first_line_number``.

    Relative times resolve against ``now`` (default: when the first line is read).
    """
    for line_number, text in enumerate(lines, start=first_line_number):
        if not text.strip():
            continue
        if now is None:
            now = reference_now()
        try:
            value: OrderEvent | CustomerPreferences | InputError = parse_line(text, line_number, now)
        except InputError as exc:
            value = exc
        yield ParsedLine(line_number, value)


def parse_line(text: str, line_number: int = 1, now: datetime | None = None) -> OrderEvent | CustomerPreferences:
    """Parse and validate one line; raise :class:`InputError` if it cannot be sent.

    Relative times resolve against ``now`` (default: the current time).
    """
    if now is None:
        now = reference_now()
    undecodable = None if text.isascii() else _UNDECODABLE.search(text)
    if undecodable is not None:  # read with errors="surrogateescape": the byte that is not UTF-8
        raise InputError(line_number, f"not UTF-8 text: byte 0x{ord(undecodable.group()) - 0xDC00:02x} at column "
                                      f"{undecodable.start() + 1}; save the file as UTF-8")
    try:
        data = json_text.loads(text.strip())
    except json.JSONDecodeError as exc:
        raise InputError(line_number, f"not valid JSON: {exc.msg} at column {exc.colno}") from exc
    except ValueError as exc:
        raise InputError(line_number, f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(line_number, f"must be a JSON object, not {type(data).__name__}")
    if PREFERENCES_KEY in data:
        return _preferences(data, line_number, now)
    try:
        event = event_from_record(data, now)
        validate_event(event)
    except EventValidationError as exc:
        raise InputError(line_number, exc.problem, exc.field) from exc
    return event


def _preferences(data: dict[str, Any], line_number: int, now: datetime) -> CustomerPreferences:
    extra = sorted(set(data) - {PREFERENCES_KEY})
    if extra:
        raise InputError(line_number, f"a preferences line has only the key {PREFERENCES_KEY!r}", extra[0])
    try:
        preferences = preferences_from_record(data[PREFERENCES_KEY], now)
    except EventValidationError as exc:
        field = f"{PREFERENCES_KEY}.{exc.field}" if exc.field else PREFERENCES_KEY
        raise InputError(line_number, exc.problem, field) from exc
    if not preferences.customer_id.strip():
        raise InputError(line_number, "must not be empty", f"{PREFERENCES_KEY}.customer_id")
    return preferences
