"""Errors of the schema contract: validation on the way in, decoding on the way out."""

from __future__ import annotations

from ordernotify.errors import OrderNotifyError


class SchemaError(OrderNotifyError):
    """Something about an event does not fit the published contract."""


class EventValidationError(SchemaError):
    """An event breaks the schema or a business rule; ``field`` names the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)


class SumsError(EventValidationError):
    """An order's money does not add up (see :mod:`schemas.sums`); ``fields`` lists every field in the sum."""

    def __init__(self, field: str, problem: str, fields: tuple[str, ...]) -> None:
        self.fields = fields
        super().__init__(field, problem)


class DecodeError(SchemaError):
    """Bytes from Kafka could not be turned into an event."""

    reason = "undecodable"


class UnknownSchemaError(DecodeError):
    """The bytes name a writer schema (fingerprint) that no published version has."""

    reason = "unknown_schema"


class InvalidEventError(DecodeError):
    """The bytes decode, but the event breaks a business rule (negative price, bad address...)."""

    reason = "invalid_event"


class SumsDoNotAddUpError(InvalidEventError):
    """The bytes decode, but the order's subtotal, discount, shipping, tax and total do not add up."""

    reason = "sums_do_not_add_up"
