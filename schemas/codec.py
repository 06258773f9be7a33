"""Avro single-object encoding (the bytes on every ordernotify topic).

Layout: ``C3 01`` | 8-byte little-endian CRC-64-AVRO fingerprint of the writer
schema | Avro binary datum. The reader always decodes into the newest
published version of the subject (schema resolution), so old writers keep
working after the schema evolves.
"""

from __future__ import annotations

import io
from typing import Any

import fastavro

from schemas.events import CustomerPreferences, OrderEvent
from schemas.exceptions import (
    DecodeError,
    EventValidationError,
    InvalidEventError,
    SumsDoNotAddUpError,
    SumsError,
)
from schemas.records import event_from_record, preferences_from_record, to_record
from schemas.registry import (
    CUSTOMER_PREFERENCES,
    ORDER_EVENT,
    SchemaRegistry,
    default_registry,
)
from schemas.validation import validate_event

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8


class AvroCodec:
    """Encode and decode datums of one subject in single-object encoding."""

    def __init__(self, subject: str, registry: SchemaRegistry | None = None) -> None:
        self.subject = subject
        self.registry = registry or default_registry()
        self._reader = self.registry.latest(subject).schema

    def encode(self, datum: Any, version: int | None = None) -> bytes:
        writer = self.registry.latest(self.subject) if version is None else self.registry.version(self.subject, version)
        buffer = io.BytesIO()
        buffer.write(MAGIC)
        buffer.write(writer.fingerprint)
        try:
            fastavro.schemaless_writer(buffer, writer.schema, datum)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise EventValidationError("", f"does not fit {self.subject} v{writer.version}: {exc}") from exc
        return buffer.getvalue()

    def decode(self, data: bytes) -> Any:
        if len(data) < HEADER_SIZE or data[:2] != MAGIC:
            got = data[:10].hex() or "nothing"
            raise DecodeError(f"not Avro single-object encoding (expected C3 01 + 8-byte fingerprint, got {got})")
        writer = self.registry.by_fingerprint(self.subject, bytes(data[2:HEADER_SIZE]))
        buffer = io.BytesIO(data)
        buffer.seek(HEADER_SIZE)
        try:
            datum = fastavro.schemaless_reader(
                buffer, writer.schema, self._reader, return_record_name=True, return_record_name_override=True
            )
        except Exception as exc:  # fastavro raises bare EOFError, ValueError, UnicodeDecodeError, IndexError...
            raise DecodeError(f"{self.subject} v{writer.version} bytes do not decode: {exc!r}") from exc
        if buffer.tell() != len(data):
            raise DecodeError(f"{len(data) - buffer.tell()} trailing bytes after the {self.subject} datum")
        return datum


def _payload_record_name(event: OrderEvent) -> str:
    return f"org.ordernotify.events.{type(event.payload).__name__}"


class EventCodec:
    """Order events <-> bytes, with business-rule validation on both sides."""

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self._avro = AvroCodec(ORDER_EVENT, registry)

    def encode(self, event: OrderEvent, version: int | None = None, validate: bool = True) -> bytes:
        """``validate=False`` only for an event its caller validated a moment ago (``ordernotify emit``'s parser):
        the rules are checked once, where the event enters."""
        if validate:
            validate_event(event)
        datum = to_record(event)
        datum["payload"] = (_payload_record_name(event), datum["payload"])
        return self._avro.encode(datum, version)

    def decode(self, data: bytes, validate: bool = True) -> OrderEvent:
        """``validate=False`` only for bytes this consumer decoded and validated before (an event waiting in
        the state store): the rules are checked once, where the event enters."""
        datum = self._avro.decode(data)
        try:
            datum["event_id"] = str(datum["event_id"])
            event = event_from_record(datum)
            if validate:
                validate_event(event)
        except SumsError as exc:
            raise SumsDoNotAddUpError(str(exc)) from exc
        except EventValidationError as exc:
            raise InvalidEventError(str(exc)) from exc
        return event


class PreferencesCodec:
    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self._avro = AvroCodec(CUSTOMER_PREFERENCES, registry)

    def encode(self, preferences: CustomerPreferences) -> bytes:
        return self._avro.encode(to_record(preferences))

    def decode(self, data: bytes) -> CustomerPreferences:
        try:
            return preferences_from_record(self._avro.decode(data))
        except EventValidationError as exc:
            raise InvalidEventError(str(exc)) from exc
