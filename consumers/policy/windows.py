"""Closing due windows: the events an order gathered in one group become one outbox entry, or wait longer.

Runs on the delivering side, in the same transaction as the claim of outbox entries, so a due window
is queued and taken in one step. What is decided here is what only the window's end can tell:
whether shipping news is opted out of, over the hourly limit or inside quiet hours.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from consumers.notification import Notification
from consumers.policy.rules import Group, SuppressReason, compose, quiet_until, throttled_until
from consumers.state.outbox import SourceEvent
from consumers.state.store import DueGroup, StateTx
from ordernotify.config import Settings
from ordernotify.errors import OrderNotifyError
from schemas.codec import EventCodec
from schemas.events import OrderEvent

log = logging.getLogger(__name__)

WINDOW_LEASE_S = 60.0  # a window is claimed and closed in one transaction; the lease only guards a crash inside
RETRY_BROKEN_WINDOW_S = 3600.0


@dataclass(frozen=True, slots=True)
class NotSent:
    """News that will not be e-mailed, for the communications log."""

    order_id: str
    customer_id: str
    reason: str
    event_ids: tuple[str, ...]


@dataclass
class ClosedWindows:
    queued: list[Notification] = field(default_factory=list)
    not_sent: list[NotSent] = field(default_factory=list)
    postponed: list[str] = field(default_factory=list)  # the groups held back: "throttled" or "quiet_hours"


def close_due_windows(tx: StateTx, settings: Settings, codec: EventCodec, now: float, limit: int) -> ClosedWindows:
    """Queue an outbox entry for every due window (up to ``limit``), or postpone or suppress it."""
    closed = ClosedWindows()
    for group in tx.claim_due_groups(now, now + WINDOW_LEASE_S, limit):
        try:
            with tx.savepoint():
                _close(tx, settings, codec, group, now, closed)
        except OrderNotifyError as exc:
            if exc.retriable:
                raise
            _set_aside(tx, group, now, exc)
        except Exception as exc:  # a bug in one window must not stop every other e-mail
            _set_aside(tx, group, now, exc)
    return closed


def _set_aside(tx: StateTx, group: DueGroup, now: float, exc: Exception) -> None:
    """Keep the window (nothing is lost) and try it again in an hour; the log says why."""
    log.error("closing a %s window failed; it is tried again in %.0f s", group.group, RETRY_BROKEN_WINDOW_S,
              exc_info=exc)
    tx.postpone_group(group.order_id, group.group, now + RETRY_BROKEN_WINDOW_S)


def _close(tx: StateTx, settings: Settings, codec: EventCodec, group: DueGroup, now: float,
           closed: ClosedWindows) -> None:
    pending = tx.group_events(group.order_id, group.group)
    event_ids = [p.event_id for p in pending]
    if not pending:
        tx.finish_group(group.order_id, group.group, [])
        return
    events = [codec.decode(p.event, validate=False) for p in pending]  # validated when they were decided
    if group.group == Group.SHIPPING.value:
        if tx.opted_out(group.customer_id):
            tx.finish_group(group.order_id, group.group, event_ids)
            closed.not_sent.append(NotSent(group.order_id, group.customer_id, SuppressReason.OPTED_OUT.value,
                                           tuple(event_ids)))
            return
        held = _held_until(tx, settings, group.customer_id, events, now)
        if held is not None:
            due, why = held
            tx.postpone_group(group.order_id, group.group, due)
            closed.postponed.append(why)
            log.debug("postponed a %s window until %s (%s)", group.group, _utc(due).isoformat(), why)
            return
    notification = compose(Group(group.group), events)
    sources = [SourceEvent(p.event_id, p.event, p.src_topic, p.src_partition, p.src_offset) for p in pending]
    tx.outbox.add_ready(notification.ready_entry(), sources, now)
    tx.finish_group(group.order_id, group.group, event_ids)
    closed.queued.append(notification)


def _held_until(tx: StateTx, settings: Settings, customer_id: str, events: list[OrderEvent],
                now: float) -> tuple[float, str] | None:
    """The hourly limit and quiet hours for shipped/delivered news: when it may go, and why not now."""
    recent = [_utc(t) for t in tx.outbox.informational_sent_since(customer_id, now - 3600)]
    throttled = throttled_until(recent, _utc(now), settings.throttle_per_hour)
    quiet = quiet_until(_utc(now), events[-1].customer.time_zone, settings.quiet_hours_range())
    later = [t for t in (throttled, quiet) if t is not None]
    if not later:
        return None
    return max(later).timestamp(), "throttled" if throttled is not None else "quiet_hours"


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
