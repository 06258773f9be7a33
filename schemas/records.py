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
from collections.abc import Callable, Mapping
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
def _record_plan(cls: Any) -> tuple[tuple[str, bool], ...] | None:
    """A record type's fields as (name, taken as it is), or None for any other type. A field declared as a plain
    value (a string, number, date..., or an optional one) is taken as it is; any other goes through
    :func:`to_record`."""
    if not dataclasses.is_dataclass(cls):
        return None
    hints = _hints(cls)  # type: ignore[arg-type]
    return tuple((f.name, _declared_plain(hints[f.name])) for f in dataclasses.fields(cls))


def _declared_plain(tp: Any) -> bool:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return all(arg in _PLAIN for arg in typing.get_args(tp))
    return tp in _PLAIN


def to_record(value: Any) -> Any:
    """Dataclasses to dicts, enums to their symbol, tuples to lists; dates stay dates."""
    cls = type(value)
    if cls in _PLAIN:
        return value
    plan = _record_plan(cls)  # type: ignore[arg-type]
    if plan is not None:
        return {name: getattr(value, name) if plain else to_record(getattr(value, name)) for name, plain in plan}
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


_PAYLOAD_BUILT = frozenset({"payload"})  # event_from_record builds the payload by event_type


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
    return _build_dataclass(OrderEvent, fields, "", now, prebuilt=_PAYLOAD_BUILT)


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


# Building a value of a declared type from a record: one builder function per type, made once from the type hints
# (:func:`_builder`), so that the per-event work is only the checks and conversions themselves. A builder raises
# EventValidationError naming the field relative to the value it was given; each record and list level puts its
# own name in front on the way out (:func:`_within`), so paths cost nothing unless something is wrong.
Builder = Callable[[Any, datetime | None], Any]


def _build(tp: Any, value: Any, path: str, now: datetime | None = None) -> Any:
    try:
        return _builder(tp)(value, now)
    except EventValidationError as exc:
        raise _within(path, exc) from None


def _build_dataclass(cls: type[T], value: Any, path: str, now: datetime | None = None,
                     prebuilt: frozenset[str] = frozenset()) -> T:
    """``prebuilt``: fields whose values are already built (taken as they are)."""
    try:
        return _record_builder(cls, prebuilt)(value, now)  # type: ignore[arg-type]
    except EventValidationError as exc:
        raise _within(path, exc) from None


def _within(path: str, exc: EventValidationError) -> EventValidationError:
    """``exc`` with ``path`` in front of the field it names."""
    if not path:
        return exc
    field = exc.field
    if not field:
        return EventValidationError(path, exc.problem)
    return EventValidationError(f"{path}{field}" if field.startswith("[") else f"{path}.{field}", exc.problem)


def _not(expected: str, value: Any) -> EventValidationError:
    if value is None:
        return EventValidationError("", "is required")
    return EventValidationError("", f"{expected}, not {_kind(value)}")


@functools.cache
def _builder(tp: Any) -> Builder:
    kind, target = _shape(tp)
    if kind in ("optional", "required"):
        inner = _builder(target)
        if kind == "required":
            return inner  # None is refused by the inner builder
        return lambda value, now: None if value is None else inner(value, now)
    if kind == "record":
        return _record_builder(target, frozenset())
    if kind == "tuple":
        return _tuple_builder(_builder(target))
    if kind == "enum":
        return _enum_builder(target)
    return _LEAF_BUILDERS[kind]


@functools.cache
def _record_builder(cls: Any, prebuilt: frozenset[str]) -> Builder:
    fields, known = _fields(cls)
    plan = tuple((name, required, plain, None if name in prebuilt else _builder(tp))
                 for name, tp, required, plain in fields)

    def build_record(value: Any, now: datetime | None) -> Any:
        if type(value) is not dict and not isinstance(value, Mapping):  # the ABC check is slow: dicts skip it
            raise _not("must be an object", value)
        if not known.issuperset(value):
            raise EventValidationError(str(sorted(set(value) - known, key=str)[0]), "is not a field of this record")
        kwargs: dict[str, Any] = {}
        for name, required, plain, build in plan:
            if name not in value:
                if required:
                    raise EventValidationError(name, "is required")
                continue
            raw = value[name]
            if build is None or type(raw) is plain:  # already built, or a string or integer as declared
                kwargs[name] = raw
                continue
            try:
                kwargs[name] = build(raw, now)
            except EventValidationError as exc:
                raise _within(name, exc) from None
        return cls(**kwargs)

    return build_record


def _tuple_builder(build_item: Builder) -> Builder:
    def build_tuple(value: Any, now: datetime | None) -> tuple[Any, ...]:
        if not isinstance(value, (list, tuple)):
            raise _not("must be a list", value)
        try:
            return tuple([build_item(item, now) for item in value])
        except EventValidationError:
            for index, item in enumerate(value):  # which item: built again, only when one is wrong
                try:
                    build_item(item, now)
                except EventValidationError as exc:
                    raise _within(f"[{index}]", exc) from None
            raise

    return build_tuple


def _enum_builder(cls: type[enum.Enum]) -> Builder:
    members = {member.value: member for member in cls}

    def build_enum(value: Any, now: datetime | None) -> enum.Enum:
        try:
            return members[value]
        except (KeyError, TypeError):
            if value is None:
                raise EventValidationError("", "is required") from None
            symbols = ", ".join(members)
            raise EventValidationError("", f"unknown value {value!r}; expected one of {symbols}") from None

    return build_enum


def _build_str(value: Any, now: datetime | None) -> str:
    if isinstance(value, str):
        return value
    raise _not("must be a string", value)


def _build_int(value: Any, now: datetime | None) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _not("must be an integer", value)


def _build_bool(value: Any, now: datetime | None) -> bool:
    if isinstance(value, bool):
        return value
    raise _not("must be true or false", value)


def _build_instant(value: Any, now: datetime | None) -> datetime:
    if value is None:
        raise EventValidationError("", "is required")
    return _build_datetime(value, "", now)


def _build_day(value: Any, now: datetime | None) -> date:
    if value is None:
        raise EventValidationError("", "is required")
    return _build_date(value, "", now)


_LEAF_BUILDERS: dict[str, Builder] = {
    "str": _build_str, "int": _build_int, "bool": _build_bool, "datetime": _build_instant, "date": _build_day,
}


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


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)
