"""What became of one consumed record: explicit types instead of None/False sentinels."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sent:
    message_id: str
    template: str


@dataclass(frozen=True, slots=True)
class Suppressed:
    reason: str


@dataclass(frozen=True, slots=True)
class Held:
    """Waiting in a coalescing window or quiet hours; sent later from the state store."""

    reason: str


@dataclass(frozen=True, slots=True)
class DeadLettered:
    reason: str
    detail: str


Outcome = Sent | Suppressed | Held | DeadLettered
