"""Errors of the producing side; each wraps (and chains) the schema or kafka-python error behind it."""

from __future__ import annotations

from ordernotify.errors import OrderNotifyError
from schemas.exceptions import EventValidationError


class ProducerError(OrderNotifyError):
    """Root of the errors raised by :mod:`producers`."""


class EventRefused(ProducerError):
    """The event breaks the contract, so it was not sent; ``field`` names the culprit.

    Not retriable: sending the same event again will be refused again.
    """

    def __init__(self, error: EventValidationError) -> None:
        self.field = error.field
        self.problem = error.problem
        super().__init__(str(error))


class DeliveryFailed(ProducerError):
    """The broker did not acknowledge the record in time (or refused it).

    Retriable: the event id stays the same, so a re-send is deduplicated downstream.
    """

    retriable = True


class InputError(ProducerError):
    """A line of JSON-lines input cannot become an event; names the line and the problem."""

    def __init__(self, line_number: int, problem: str, field: str = "") -> None:
        self.line_number = line_number
        self.field = field
        self.problem = problem
        where = f"{field}: " if field else ""
        super().__init__(f"line {line_number}: {where}{problem}")


class EncodingStopped(ProducerError):
    """A process that parsed and encoded lines (``ordernotify emit --encoders``) ended abruptly, killed by the
    kernel's out-of-memory killer or an operator: the lines it held were not sent, nor any after them.

    Not retriable as such: sending the file again re-sends the lines before, which the consumers drop as
    duplicates by their event ids.
    """


class WouldBlock(ProducerError):
    """A send that would wait (for the topic's metadata, or for a new Kafka client), asked by a caller that must not
    wait (an event loop): it sends from a thread instead."""
