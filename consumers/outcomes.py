"""What became of one consumed record: explicit types instead of None/False sentinels."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Suppressed:
    reason: str


@dataclass(frozen=True, slots=True)
class Held:
    """Waiting in a coalescing window (``reason``: its group); ``coalesced``: it joined one already open."""

    reason: str
    coalesced: bool = False


@dataclass(frozen=True, slots=True)
class Queued:
    """Decided to be sent now: in the outbox, for the dispatcher."""

    template: str


@dataclass(frozen=True, slots=True)
class DeadLettered:
    reason: str
    detail: str


Outcome = Suppressed | Held | Queued | DeadLettered  # of one record, on the deciding side
