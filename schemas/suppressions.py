"""The suppression list's record: why e-mail to one address stops, as carried by ``customers.suppressions``.

The record names the address only by its digest (``consumers.deliver.verp.address_digest``): the topic is
compacted and kept for as long as the suppression holds, and a digest is all a sender needs to check an
address it already has. Whether a record stops an e-mail (:meth:`SuppressionRecord.stops`) is decided here,
where both the bounce service and the consumer read it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.codec import AvroCodec
from schemas.exceptions import DecodeError
from schemas.registry import CUSTOMER_SUPPRESSION, SchemaRegistry


class SuppressionReason(enum.StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"


_WORDS = {
    SuppressionReason.HARD_BOUNCE: "hard bounce",
    SuppressionReason.SOFT_BOUNCE: "soft bounces",
    SuppressionReason.COMPLAINT: "spam complaint",
    SuppressionReason.MANUAL: "added by an operator",
}


@dataclass(frozen=True, slots=True)
class SuppressionRecord:
    address_digest: str
    reason: SuppressionReason
    first_at: datetime
    last_at: datetime
    count: int
    suppressed_until: datetime | None  # None: until lifted; not after last_at: counted, not (yet) suppressed
    notification_id: str | None = None
    order_id: str | None = None
    customer_id: str | None = None
    detail: str = ""
    lifted_at: datetime | None = None
    lifted_by: str | None = None
    lifted_why: str | None = None

    def in_force(self, now: datetime) -> bool:
        """Whether the address is suppressed at ``now`` (for every kind of e-mail or, a complaint, for some)."""
        if self.lifted_at is not None:
            return False
        return self.suppressed_until is None or self.suppressed_until > now

    def stops(self, informational: bool, complaint_blocks_must_send: bool, now: datetime) -> bool:
        """Whether an e-mail of this kind to the address must not go out at ``now``.

        A complaint stops the news the customer can switch off; a must-send e-mail (order placed, a choice
        to make, a refund) only with ``complaint_blocks_must_send``. Every other reason stops every e-mail."""
        if not self.in_force(now):
            return False
        if self.reason is SuppressionReason.COMPLAINT:
            return informational or complaint_blocks_must_send
        return True

    def describe(self) -> str:
        """For people, with no address: 'hard bounce on 2026-12-02', 'soft bounces (3) until 2026-12-09'."""
        if self.reason is SuppressionReason.SOFT_BOUNCE and self.suppressed_until is not None:
            return f"soft bounces ({self.count}) until {self.suppressed_until.astimezone(UTC):%Y-%m-%d}"
        when = self.last_at if self.reason is SuppressionReason.SOFT_BOUNCE else self.first_at
        return f"{_WORDS[self.reason]} on {when.astimezone(UTC):%Y-%m-%d}"


class SuppressionCodec:
    """Suppression records <-> the single-object encoded bytes of the topic."""

    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self._avro = AvroCodec(CUSTOMER_SUPPRESSION, registry)

    def encode(self, record: SuppressionRecord) -> bytes:
        datum: dict[str, Any] = {
            "address_digest": record.address_digest, "reason": record.reason.name, "first_at": record.first_at,
            "last_at": record.last_at, "count": record.count, "suppressed_until": record.suppressed_until,
            "notification_id": record.notification_id, "order_id": record.order_id,
            "customer_id": record.customer_id, "detail": record.detail, "lifted_at": record.lifted_at,
            "lifted_by": record.lifted_by, "lifted_why": record.lifted_why,
        }
        return self._avro.encode(datum)

    def decode(self, data: bytes) -> SuppressionRecord:
        datum = self._avro.decode(data)
        try:
            return SuppressionRecord(
                address_digest=datum["address_digest"], reason=SuppressionReason[datum["reason"]],
                first_at=_utc(datum["first_at"]), last_at=_utc(datum["last_at"]), count=int(datum["count"]),
                suppressed_until=_utc_or_none(datum["suppressed_until"]),
                notification_id=datum["notification_id"], order_id=datum["order_id"],
                customer_id=datum["customer_id"], detail=datum["detail"],
                lifted_at=_utc_or_none(datum["lifted_at"]), lifted_by=datum["lifted_by"],
                lifted_why=datum["lifted_why"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DecodeError(f"{CUSTOMER_SUPPRESSION} datum does not make a suppression record: {exc!r}") from exc


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)
