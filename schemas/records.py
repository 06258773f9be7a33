"""Conversion between the typed event model and plain records (Avro datums or JSON objects).

One generic converter driven by the dataclasses' type hints, so that adding a
field to the schema means adding it to :mod:`schemas.events` and nothing else.
Errors name the exact field path (``payload.items[2].quantity``) so that the
platform team can fix the producing code without reading ours.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from schemas import relative_times
from schemas.events import PAYLOAD_TYPE, CustomerPreferences, EventType, OrderEvent
from schemas.exceptions import EventValidationError

T = TypeVar("T")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_PLAIN = frozenset({str, int, float, bool, type(None), bytes, datetime, date})


@functools.cache
def _record_names(cls: Any) -> tuple[str, ...] | None:
    """The field names of a record type, or None for any other type."""
    return tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else None


def to_record(value: Any) -> Any:
    """Dataclasses to dicts, enums to their symbol, tuples to lists; dates stay dates."""
    cls = type(value)
    if cls in _PLAIN:
        return value
    names = _record_names(cls)  # type: ignore[arg-type]
    if names is not None:
        return {name: to_record(getattr(value, name)) for name in names}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [to_record(item) for item in value]
    return value


def to_json_record(value: Any) -> Any:
    """Like :func:`to_record`, with dates and timestamps as ISO 8601 strings (the JSON shape)."""
    record = to_record(value)
    return _isoformat_dates(record)


def _isoformat_dates(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _isoformat_dates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_isoformat_dates(item) for item in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def event_from_record(data: Any, now: datetime | None = None) -> OrderEvent:
    """Build an :class:`OrderEvent` from an Avro datum or a JSON object.

    The payload's record type follows from ``event_type``; a JSON payload is the
    bare record, an Avro payload may come as ``(record_name, record)``. With
    ``now``, timestamps and dates may also be written relative to it
    (``"now-2h"``, ``"today+3d"``: :mod:`schemas.relative_times`).
    """
    if not isinstance(data, Mapping):
        raise EventValidationError("", f"an event must be an object, not {type(data).__name__}")
    event_type = _build(EventType, data.get("event_type"), "event_type")
    payload = data.get("payload")
    if isinstance(payload, tuple):
        record_name, payload = payload
        expected = PAYLOAD_TYPE[event_type].__name__
        if record_name.rsplit(".", 1)[-1] != expected:
            raise EventValidationError(
                "payload", f"is a {record_name} record but event_type {event_type.value} needs {expected}"
            )
    fields = {**data, "payload": _build(PAYLOAD_TYPE[event_type], payload, "payload", now)}
    return _build_dataclass(OrderEvent, fields, "", now, prebuilt={"payload"})


def preferences_from_record(data: Any, now: datetime | None = None) -> CustomerPreferences:
    """Build :class:`CustomerPreferences`; ``now`` as for :func:`event_from_record`."""
    return _build(CustomerPreferences, data, "", now)


@functools.cache
def _shape(tp: Any) -> tuple[str, Any]:
    """What converting to ``tp`` takes, worked out once per type: (kind, the type it applies to)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        members = [arg for arg in args if arg is not type(None)]
        if len(members) != 1:
            return "ambiguous", tp  # pragma: no cover - model has none
        return ("optional" if len(members) < len(args) else "required"), members[0]
    if origin is tuple:
        return "tuple", typing.get_args(tp)[0]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return "record", tp
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "enum", tp
    if tp in (str, int, bool, datetime, date):
        return tp.__name__, tp
    raise TypeError(f"no converter for {tp!r}")  # pragma: no cover - programming error


@functools.cache
def _fields(cls: Any) -> tuple[tuple[tuple[str, Any, bool, type | None], ...], frozenset[str]]:
    """A record type's fields as (name, type, required, plain), and their names; ``plain`` is ``str`` or ``int``
    for a field of exactly that type (a value of that type is taken as it is), else None."""
    hints = _hints(cls)
    fields = tuple((f.name, hints[f.name], f.default is dataclasses.MISSING,
                    hints[f.name] if hints[f.name] in (str, int) else None)
                   for f in dataclasses.fields(cls))
    return fields, frozenset(field[0] for field in fields)


def _build(tp: Any, value: Any, path: str, now: datetime | None = None) -> Any:
    kind, target = _shape(tp)
    if kind in ("optional", "required"):
        if value is None:
            if kind == "optional":
                return None
            raise EventValidationError(path, "is required")
        kind, target = _shape(target)
    if value is None:
        raise EventValidationError(path, "is required")
    if kind == "str":
        if not isinstance(value, str):
            raise EventValidationError(path, f"must be a string, not {_kind(value)}")
        return value
    if kind == "record":
        return _build_dataclass(target, value, path, now)
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise EventValidationError(path, f"must be an integer, not {_kind(value)}")
        return value
    if kind == "tuple":
        if not isinstance(value, (list, tuple)):
            raise EventValidationError(path, f"must be a list, not {_kind(value)}")
        return tuple(_build(target, item, f"{path}[{i}]", now) for i, item in enumerate(value))
    if kind == "enum":
        try:
            return target(value)
        except ValueError:
            symbols = ", ".join(member.value for member in target)
            raise EventValidationError(path, f"unknown value {value!r}; expected one of {symbols}") from None
    if kind == "bool":
        if not isinstance(value, bool):
            raise EventValidationError(path, f"must be true or false, not {_kind(value)}")
        return value
    if kind == "datetime":
        return _build_datetime(value, path, now)
    if kind == "date":
        return _build_date(value, path, now)
    raise TypeError(f"no converter for {tp!r} at {path}")  # pragma: no cover - programming error


def _build_dataclass(cls: type[T], value: Any, path: str, now: datetime | None = None,
                     prebuilt: frozenset[str] | set[str] = frozenset()) -> T:
    if not isinstance(value, Mapping):
        raise EventValidationError(path, f"must be an object, not {_kind(value)}")
    fields, known = _fields(cls)  # type: ignore[arg-type]
    if not known.issuperset(value):
        unknown = sorted(set(value) - known)
        raise EventValidationError(_join(path, unknown[0]), "is not a field of this record")
    kwargs: dict[str, Any] = {}
    for name, tp, required, plain in fields:
        if name not in value:
            if required:
                raise EventValidationError(_join(path, name), "is required")
            continue
        raw = value[name]
        if type(raw) is plain or name in prebuilt:  # a string or an integer as declared: nothing to convert
            kwargs[name] = raw
        else:
            kwargs[name] = _build(tp, raw, f"{path}.{name}" if path else name, now)
    return cls(**kwargs)


def _build_datetime(value: Any, path: str, now: datetime | None = None) -> datetime:
    if isinstance(value, str) and now is not None and relative_times.looks_relative_timestamp(value):
        try:
            resolved = relative_times.resolve_timestamp(value, now)
        except relative_times.OutOfRange as exc:
            raise EventValidationError(path, _out_of_range(value, exc)) from None
        if resolved is None:
            raise EventValidationError(
                path, f"{value!r} is not a time relative to now ({relative_times.TIMESTAMP_FORMS})")
        return resolved
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise EventValidationError(path, f"{value!r} is not an ISO 8601 timestamp") from None
    if not isinstance(value, datetime):
        raise EventValidationError(path, f"must be an ISO 8601 timestamp, not {_kind(value)}")
    if value.tzinfo is None:
        raise EventValidationError(path, "needs a UTC offset (e.g. 2026-11-23T10:00:00Z)")
    return value.astimezone(UTC)


def _build_date(value: Any, path: str, now: datetime | None = None) -> date:
    if isinstance(value, str) and now is not None and relative_times.looks_relative_date(value):
        try:
            resolved = relative_times.resolve_date(value, now)
        except relative_times.OutOfRange as exc:
            raise EventValidationError(path, _out_of_range(value, exc)) from None
        if resolved is None:
            raise EventValidationError(path, f"{value!r} is not a date relative to today ({relative_times.DATE_FORMS})")
        return resolved
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise EventValidationError(path, f"{value!r} is not an ISO 8601 date (YYYY-MM-DD)") from None
    if isinstance(value, datetime) or not isinstance(value, date):
        raise EventValidationError(path, f"must be an ISO 8601 date, not {_kind(value)}")
    return value


def _out_of_range(value: str, exc: relative_times.OutOfRange) -> str:
    shown = value if len(value) <= 40 else f"{value[:20]}...{value[-8:]}"  # not thousands of digits
    return f"{shown!r} is out of range: {exc}"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)
