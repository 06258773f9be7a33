"""Times relative to now in JSON input: ``"now-2h"`` for a timestamp, ``"today+3d"`` for a date.

A file of example or test events written with absolute times goes stale: once its events are older
than the consumer's ``--max-event-age-h`` they are suppressed as ``too_old`` and nothing is sent. Written
relative to the moment they are read, the same file produces e-mails whenever it is emitted.

Only the JSON-lines input understands these forms (the reader resolves them once per run, so the lines
keep their spacing); on the wire every time is absolute Avro, as always.

* timestamp: ``now``, or ``now`` followed by a sign and one or more ``<integer><unit>`` parts, units
  ``d`` (days), ``h``, ``m``, ``s``: ``now-45m``, ``now+1h``, ``now-1d2h30m``.
* date: ``today`` (the UTC date of now), or ``today`` followed by a sign and ``<integer>d``: ``today+3d``.

An offset that lands outside the years 1 to 9999 (``today+99999999d``) raises :class:`OutOfRange`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

_UNITS = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1), "s": timedelta(seconds=1)}
_TIMESTAMP = re.compile(r"now(?:([+-])((?:\d+[dhms])+))?")
_PART = re.compile(r"(\d+)([dhms])")
_DATE = re.compile(r"today(?:([+-])(\d+)d)?")

TIMESTAMP_FORMS = "now, now-2h, now+15m, now-1d2h30m"
DATE_FORMS = "today, today+3d, today-1d"
RANGE = "dates run from 0001-01-01 to 9999-12-31"


class OutOfRange(ValueError):
    """A relative time of the right form whose offset leads past the dates Python (and the schema) can hold."""


def reference_now() -> datetime:
    """The instant a run resolves its relative times against, to whole milliseconds (what Avro keeps)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def looks_relative_timestamp(text: str) -> bool:
    return text.startswith("now")


def looks_relative_date(text: str) -> bool:
    return text.startswith("today")


def resolve_timestamp(text: str, now: datetime) -> datetime | None:
    """``now-2h`` -> ``now`` minus two hours; None if ``text`` is not of that form, :class:`OutOfRange` if the
    offset leads past the years 1 to 9999."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    sign, parts = match.groups()
    if not parts:
        return now
    try:
        offset = sum((int(amount) * _UNITS[unit] for amount, unit in _PART.findall(parts)), timedelta())
        return now - offset if sign == "-" else now + offset
    except (OverflowError, ValueError):  # ValueError: int() of more than 4300 digits
        raise OutOfRange(RANGE) from None


def resolve_date(text: str, now: datetime) -> date | None:
    """``today+3d`` -> the UTC date of ``now`` plus three days; None if ``text`` is not of that form,
    :class:`OutOfRange` if the offset leads past the years 1 to 9999."""
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    sign, days = match.groups()
    today = now.astimezone(UTC).date()
    if days is None:
        return today
    try:
        offset = timedelta(days=int(days))
        return today - offset if sign == "-" else today + offset
    except (OverflowError, ValueError):  # ValueError: int() of more than 4300 digits
        raise OutOfRange(RANGE) from None
