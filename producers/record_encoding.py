"""Order events and preferences -> the exact Kafka records the producer hands to the broker.

Validation, Avro encoding, key and headers in one place, so that ``ordernotify emit --dry-run`` proves
that a file encodes with the very code that sends it, without a broker. Wire format: see
:mod:`producers.event_producer` and ``schemas/README.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ordernotify.config import Settings
from ordernotify.metrics import Metrics, bounded
from producers.exceptions import EventRefused
from schemas.codec import EventCodec, PreferencesCodec
from schemas.events import CustomerPreferences, OrderEvent
from schemas.exceptions import EventValidationError
from schemas.validation import check_encoded_size

EVENT_CONTENT_TYPE = b"application/vnd.ordernotify.order-event+avro"
PREFERENCES_CONTENT_TYPE = b"application/vnd.ordernotify.customer-preferences+avro"


@dataclass(frozen=True, slots=True)
class EncodedRecord:
    """One record as it goes to Kafka; ``event_id`` is None for preferences."""

    topic: str
    key: str
    value: bytes
    headers: list[tuple[str, bytes]]
    event_id: str | None


class RecordEncoder:
    """Validates and encodes; raises :class:`EventRefused` (naming the field) for what breaks the contract.

    ``metrics`` (optional) counts refusals by field, for a producer run as a service.
    """

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self._settings = settings
        self._metrics = metrics
        self._event_codec = EventCodec()
        self._preferences_codec = PreferencesCodec()

    def event(self, event: OrderEvent, validated: bool = False) -> EncodedRecord:
        """``validated``: the caller has just checked the rules (:func:`schemas.validation.validate_event`)."""
        try:
            value = self._event_codec.encode(event, validate=not validated)
            check_encoded_size(value)  # refused here, naming the size, rather than by Kafka as a retriable error
        except EventValidationError as exc:
            if self._metrics is not None:
                # the field path without list indices: bounded by the schema, never a value
                reason = bounded(re.sub(r"\[\d+\]", "", exc.field) or "schema")
                self._metrics.producer_refused.labels(reason=reason).inc()
            raise EventRefused(exc) from exc
        headers = [("event_type", event.event_type.value.encode("ascii")), ("content-type", EVENT_CONTENT_TYPE)]
        return EncodedRecord(self._settings.events_topic, event.order_id, value, headers, event.event_id)

    def preferences(self, preferences: CustomerPreferences) -> EncodedRecord:
        if not preferences.customer_id or "\n" in preferences.customer_id or "\r" in preferences.customer_id:
            raise EventRefused(EventValidationError("customer_id", "must be a non-empty single line"))
        try:
            value = self._preferences_codec.encode(preferences)
        except EventValidationError as exc:
            raise EventRefused(exc) from exc
        headers = [("content-type", PREFERENCES_CONTENT_TYPE)]
        return EncodedRecord(self._settings.preferences_topic, preferences.customer_id, value, headers, None)
