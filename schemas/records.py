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


def to_record(value: Any) -> Any:
    """Dataclasses to dicts, enums to their symbol, tuples to lists; dates stay dates."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_record(getattr(value, f.name)) for f in dataclasses.fields(value)}
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


def _build(tp: Any, value: Any, path: str, now: datetime | None = None) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if value is None:
            if len(members) < len(typing.get_args(tp)):
                return None
            raise EventValidationError(path, "is required")
        if len(members) != 1:
            raise EventValidationError(path, "ambiguous union")  # pragma: no cover - model has none
        return _build(members[0], value, path, now)
    if value is None:
        raise EventValidationError(path, "is required")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise EventValidationError(path, f"must be a list, not {_kind(value)}")
        (item_type, _ellipsis) = typing.get_args(tp)
        return tuple(_build(item_type, item, f"{path}[{i}]", now) for i, item in enumerate(value))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value, path, now)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            symbols = ", ".join(member.value for member in tp)
            raise EventValidationError(path, f"unknown value {value!r}; expected one of {symbols}") from None
    if tp is bool:
        if not isinstance(value, bool):
            raise EventValidationError(path, f"must be true or false, not {_kind(value)}")
        return value
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise EventValidationError(path, f"must be an integer, not {_kind(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise EventValidationError(path, f"must be a string, not {_kind(value)}")
        return value
    if tp is datetime:
        return _build_datetime(value, path, now)
    if tp is date:
        return _build_date(value, path, now)
    raise TypeError(f"no converter for {tp!r} at {path}")  # pragma: no cover - programming error


def _build_dataclass(cls: type[T], value: Any, path: str, now: datetime | None = None,
                     prebuilt: frozenset[str] | set[str] = frozenset()) -> T:
    if not isinstance(value, Mapping):
        raise EventValidationError(path, f"must be an object, not {_kind(value)}")
    hints = _hints(cls)  # type: ignore[arg-type]
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(value) - known)
    if unknown:
        raise EventValidationError(_join(path, unknown[0]), "is not a field of this record")
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        field_path = _join(path, field.name)
        if field.name not in value:
            if field.default is dataclasses.MISSING:
                raise EventValidationError(field_path, "is required")
            continue
        raw = value[field.name]
        kwargs[field.name] = raw if field.name in prebuilt else _build(hints[field.name], raw, field_path, now)
    return cls(**kwargs)


def _build_datetime(value: Any, path: str, now: datetime | None = None) -> datetime:
    if isinstance(value, str) and now is not None and relative_times.looks_relative_timestamp(value):
        resolved = relative_times.resolve_timestamp(value, now)
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
        resolved = relative_times.resolve_date(value, now)
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


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)
