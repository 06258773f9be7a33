"""The last look before SMTP: is the address on the suppression list?

The dispatcher asks for each rendered e-mail just before it goes to a connection (and again before each
retry), in one store transaction per batch. A stopped e-mail is done as ``not_sent`` with the reason
``address_suppressed`` and a detail such as 'hard bounce on 2026-12-02': the address itself is never
written anywhere by this check. Which suppression stops which e-mail is
:meth:`schemas.suppressions.SuppressionRecord.stops`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from consumers.deliver.verp import address_digest
from consumers.state.outbox import ClaimedEntry, Failure
from consumers.state.store import StateTx
from schemas.suppressions import SuppressionRecord

ADDRESS_SUPPRESSED = "address_suppressed"


@dataclass(frozen=True, slots=True)
class Stopped:
    """An e-mail the list stopped; ``suppression`` None: another dispatcher took it over meanwhile."""

    claimed: ClaimedEntry
    suppression: SuppressionRecord | None


def stop_suppressed(tx: StateTx, entries: list[ClaimedEntry], complaint_blocks_must_send: bool, now: float,
                    owner: str) -> list[Stopped]:
    """Mark ``not_sent`` every rendered entry whose address the list stops now; those entries, returned, must
    not be sent. The others are untouched."""
    when = datetime.fromtimestamp(now, UTC)
    stopped: list[Stopped] = []
    for claimed in entries:
        if claimed.mail is None:
            continue
        record = tx.suppression(address_digest(claimed.mail.rcpt_to))
        if record is None or not record.stops(claimed.entry.informational, complaint_blocks_must_send, when):
            continue
        failure = Failure(ADDRESS_SUPPRESSED, record.describe())
        kept = tx.outbox.mark_not_sent(claimed.entry.notification_id, failure, now, owner)
        stopped.append(Stopped(claimed, record if kept else None))
    return stopped
