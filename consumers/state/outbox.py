"""The outbox: the durable queue between deciding (the Kafka side) and delivering (the SMTP side).

An entry's life, one row, its ``status`` the state::

    ready ──claim──► (rendered) sending ──250──► sent
      │                  │   ├──4xx──► sending, again after a backoff
      │                  │   └──address on the suppression list──► not_sent
      └──render fails────┴──5xx / retries exhausted──► failed ──dead letter acknowledged──► dead_lettered

- ``ready``: decided, not rendered: what to say (template, events, recipient in the events).
- ``sending``: rendered; the exact bytes and Message-ID are stored, so a resend after a crash is the
  same message.
- ``failed``: refused for good; the events' bytes stay until the dead-letter topic has acknowledged
  them, so nothing is released before it.
- ``not_sent``: its address is on the suppression list (a bounce, a complaint); ``failure_reason`` and
  ``failure_detail`` say so. Final: its events are not replayed, there is nobody to tell.
- ``sent`` / ``dead_lettered`` / ``not_sent``: done; the bytes and events are dropped at once, the row (for the
  hourly limit and the history) until retention prunes it.

A claim is one statement that takes a lease (``claimed_by``, ``claimed_until``); the claimer renews it
while the entry is rendered, waits for a connection or is retried, so no second claimer takes it; a
claimer that died lets it go within one lease.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol


class Status(enum.StrEnum):
    READY = "ready"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"
    NOT_SENT = "not_sent"


OPEN = (Status.READY, Status.SENDING, Status.FAILED)  # work left for a dispatcher


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """One event an e-mail covers: its Avro bytes and where it was read (for the dead-letter topic)."""

    event_id: str
    event: bytes
    src_topic: str
    src_partition: int
    src_offset: int


@dataclass(frozen=True, slots=True)
class ReadyEntry:
    """What to say, decided: no rendering on the deciding side."""

    notification_id: str
    order_id: str
    customer_id: str
    template: str
    informational: bool
    event_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SentMail:
    """What the row of a sent e-mail still says about it: which message, for which order, which kind of news."""

    message_id: str
    order_id: str
    template: str


@dataclass(frozen=True, slots=True)
class RenderedMail:
    """The exact message: stored before the first attempt, so every attempt sends the same bytes."""

    message_id: str
    subject: str
    locale: str
    mail_from: str
    rcpt_to: str
    data: bytes
    first_occurred_at: float | None = None  # for the latency metric; not stored (a resend has none)


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class ClaimedEntry:
    """An entry a dispatcher holds under lease, with what it needs for the next step."""

    entry: ReadyEntry
    status: Status
    attempts: int
    first_tried_at: float | None
    events: tuple[SourceEvent, ...]
    mail: RenderedMail | None = None
    failure: Failure | None = None


@dataclass(frozen=True, slots=True)
class NotificationOwner:
    """Whose e-mail a notification was: what a bounce for it is tied to."""

    order_id: str
    customer_id: str
    recipient: str | None  # the envelope recipient, once rendered; kept in memory only, never logged


class _Query(Protocol):
    def __call__(self, sql: str, params: tuple[Any, ...] = ()) -> Any: ...


_ENTRY_COLUMNS = ("notification_id, order_id, customer_id, template, informational, event_ids, status, attempts, "
                  "first_tried_at, message_id, subject, locale, mail_from, rcpt_to, data, failure_reason, "
                  "failure_detail")


class OutboxQueries:
    """The outbox's statements, inside the caller's transaction (``StateTx.outbox``)."""

    def __init__(self, query: _Query) -> None:
        self._q = query

    def add_ready(self, entry: ReadyEntry, events: Iterable[SourceEvent], now: float) -> bool:
        """Queue an e-mail; False if this notification is queued or was sent already. One that was
        dead-lettered is queued again: its events were replayed from the dead-letter topic after a fix."""
        cursor = self._q(
            "INSERT INTO outbox (notification_id, order_id, customer_id, template, informational, event_ids, "
            "status, attempts, created_at) VALUES (?, ?, ?, ?, ?, ?, 'ready', 0, ?) "
            "ON CONFLICT (notification_id) DO UPDATE SET status = 'ready', attempts = 0, created_at = "
            "excluded.created_at, first_tried_at = NULL, claimed_by = NULL, claimed_until = NULL, message_id = NULL, "
            "data = NULL, sent_at = NULL, failure_reason = NULL, failure_detail = NULL "
            "WHERE outbox.status = 'dead_lettered'",
            (entry.notification_id, entry.order_id, entry.customer_id, entry.template, entry.informational,
             " ".join(entry.event_ids), now),
        )
        if cursor.rowcount != 1:
            return False
        for e in events:
            self._q(
                "INSERT INTO outbox_events (notification_id, event_id, event, src_topic, src_partition, src_offset) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (notification_id, event_id) DO NOTHING",
                (entry.notification_id, e.event_id, e.event, e.src_topic, e.src_partition, e.src_offset),
            )
        return True

    def claim(self, now: float, owner: str, lease_until: float, limit: int, ignore_leases: bool = False,
              ) -> list[ClaimedEntry]:
        """Take up to ``limit`` open entries that nobody holds (or whose holder let the lease run out), oldest
        first. ``ignore_leases``: the store is this process's alone (SQLite at start), every lease is stale."""
        # The lease test is repeated outside the subquery: PostgreSQL re-checks only the outer WHERE on a row a
        # concurrent claim updated meanwhile, so without it two dispatchers could take the same entry.
        free = "" if ignore_leases else " AND (claimed_until IS NULL OR claimed_until <= ?)"
        lease: tuple[Any, ...] = () if ignore_leases else (now,)
        rows = self._q(
            f"UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE status IN ('ready', 'sending', 'failed'){free}"
            f" AND notification_id IN (SELECT notification_id FROM outbox WHERE status IN ('ready', 'sending', "
            f"'failed'){free} ORDER BY created_at LIMIT ?) RETURNING {_ENTRY_COLUMNS}",
            (owner, lease_until, *lease, *lease, limit),
        ).fetchall()
        if not rows:
            return []
        events = self._events([r[0] for r in rows])
        claimed = [_claimed(r, events.get(r[0], ())) for r in rows]
        claimed.sort(key=lambda c: c.entry.notification_id)
        return claimed

    def _events(self, notification_ids: list[str]) -> dict[str, tuple[SourceEvent, ...]]:
        marks = ", ".join("?" for _ in notification_ids)
        rows = self._q(
            "SELECT notification_id, event_id, event, src_topic, src_partition, src_offset FROM outbox_events "
            f"WHERE notification_id IN ({marks}) ORDER BY notification_id, src_partition, src_offset",
            tuple(notification_ids),
        ).fetchall()
        found: dict[str, list[SourceEvent]] = {}
        for r in rows:
            found.setdefault(r[0], []).append(SourceEvent(r[1], bytes(r[2]), r[3], int(r[4]), int(r[5])))
        return {k: tuple(v) for k, v in found.items()}

    def renew(self, owner: str, notification_ids: Iterable[str], lease_until: float) -> set[str]:
        """Extend the leases ``owner`` still holds; the ids it no longer holds are missing from the answer."""
        ids = list(notification_ids)
        if not ids:
            return set()
        marks = ", ".join("?" for _ in ids)
        rows = self._q(
            f"UPDATE outbox SET claimed_until = ? WHERE claimed_by = ? AND status IN ('ready', 'sending', 'failed') "
            f"AND notification_id IN ({marks}) RETURNING notification_id",
            (lease_until, owner, *ids),
        ).fetchall()
        return {r[0] for r in rows}

    def release(self, owner: str, notification_ids: Iterable[str], untried: bool = False) -> None:
        """Let entries go at once (a clean stop), so another dispatcher need not wait for their lease.
        ``untried``: never handed to the SMTP server; a rendered one goes back to ``ready``, so that whoever
        takes it renders it again and nobody mistakes it for an interrupted send."""
        back = ", status = 'ready', data = NULL" if untried else ""
        for notification_id in notification_ids:
            self._q(f"UPDATE outbox SET claimed_by = NULL, claimed_until = NULL{back} WHERE claimed_by = ? "
                    "AND notification_id = ? AND status IN ('ready', 'sending') AND attempts = 0"
                    if untried else
                    "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = ? "
                    "AND notification_id = ? AND status IN ('ready', 'sending', 'failed')",
                    (owner, notification_id))

    def store_rendered(self, notification_id: str, mail: RenderedMail, owner: str) -> bool:
        """Keep the exact message before its first attempt; False if ``owner`` no longer holds the entry."""
        cursor = self._q(
            "UPDATE outbox SET status = 'sending', message_id = ?, subject = ?, locale = ?, mail_from = ?, "
            "rcpt_to = ?, data = ? WHERE notification_id = ? AND claimed_by = ? AND status IN ('ready', 'sending') "
            "AND data IS NULL",
            (mail.message_id, mail.subject, mail.locale, mail.mail_from, mail.rcpt_to, mail.data, notification_id,
             owner),
        )
        return cursor.rowcount == 1

    def retry_later(self, notification_id: str, at: float, first_tried_at: float, error: str, owner: str) -> None:
        """A transient failure: let go of the entry until ``at`` (anyone may take it then)."""
        self._q(
            "UPDATE outbox SET attempts = attempts + 1, first_tried_at = ?, claimed_by = NULL, claimed_until = ?, "
            "failure_detail = ? WHERE notification_id = ? AND claimed_by = ? AND status IN ('ready', 'sending')",
            (first_tried_at, at, error[:500], notification_id, owner),
        )

    def mark_sent(self, notification_id: str, now: float) -> None:
        """The server took it: recorded whoever holds the entry now (it did go out), the bytes and addresses
        dropped at once."""
        self._q(
            "UPDATE outbox SET status = 'sent', sent_at = ?, data = NULL, rcpt_to = NULL, mail_from = NULL, "
            "subject = NULL, claimed_by = NULL, claimed_until = NULL, attempts = attempts + 1, failure_detail = NULL "
            "WHERE notification_id = ? AND status IN ('ready', 'sending', 'failed')",
            (now, notification_id),
        )
        self._q("DELETE FROM outbox_events WHERE notification_id = ?", (notification_id,))

    def mark_not_sent(self, notification_id: str, failure: Failure, now: float, owner: str) -> bool:
        """Not to be sent at all (its address is suppressed): done, the bytes and addresses dropped at once.
        False if ``owner`` no longer holds the entry."""
        cursor = self._q(
            "UPDATE outbox SET status = 'not_sent', sent_at = ?, failure_reason = ?, failure_detail = ?, data = NULL, "
            "rcpt_to = NULL, mail_from = NULL, subject = NULL, claimed_by = NULL, claimed_until = NULL "
            "WHERE notification_id = ? AND claimed_by = ? AND status IN ('ready', 'sending')",
            (now, failure.reason, failure.detail[:2000], notification_id, owner),
        )
        if cursor.rowcount != 1:
            return False
        self._q("DELETE FROM outbox_events WHERE notification_id = ?", (notification_id,))
        return True

    def mark_failed(self, notification_id: str, failure: Failure, now: float, owner: str,
                    attempted: bool = False) -> bool:
        """Refused for good (``attempted``: by the SMTP server, not the renderer): the events wait here until
        their dead letters are acknowledged. False if ``owner`` no longer holds the entry (then it is not
        marked: its new holder decides)."""
        cursor = self._q(
            "UPDATE outbox SET status = 'failed', sent_at = ?, failure_reason = ?, failure_detail = ?, "
            "attempts = attempts + ? WHERE notification_id = ? AND claimed_by = ? AND status IN ('ready', 'sending')",
            (now, failure.reason, failure.detail[:2000], 1 if attempted else 0, notification_id, owner),
        )
        return cursor.rowcount == 1

    def mark_dead_lettered(self, notification_id: str) -> bool:
        """False if the entry is no longer failed (another holder dead-lettered it already)."""
        cursor = self._q(
            "UPDATE outbox SET status = 'dead_lettered', data = NULL, rcpt_to = NULL, mail_from = NULL, "
            "subject = NULL, claimed_by = NULL, claimed_until = NULL WHERE notification_id = ? AND status = 'failed'",
            (notification_id,),
        )
        if cursor.rowcount != 1:
            return False
        self._q("DELETE FROM outbox_events WHERE notification_id = ?", (notification_id,))
        return True

    def backlog(self) -> int:
        """Entries not yet done (ready, sending, failed and not dead-lettered)."""
        return int(self._q("SELECT COUNT(*) FROM outbox WHERE status IN ('ready', 'sending', 'failed')")
                   .fetchone()[0])

    def sent(self) -> list[SentMail]:
        """The e-mails sent and not yet pruned, oldest first (the demo labels its outbox with them)."""
        rows = self._q(
            "SELECT message_id, order_id, template FROM outbox WHERE status = 'sent' AND message_id IS NOT NULL "
            "ORDER BY sent_at, notification_id"
        ).fetchall()
        return [SentMail(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def owner(self, notification_id: str) -> NotificationOwner | None:
        """The order and customer of a notification, or None once its row was pruned (or never existed)."""
        row = self._q("SELECT order_id, customer_id, rcpt_to FROM outbox WHERE notification_id = ?",
                      (notification_id,)).fetchone()
        return None if row is None else NotificationOwner(str(row[0]), str(row[1]), row[2])

    def informational_sent_since(self, customer_id: str, since: float) -> list[float]:
        """When shipped/delivered e-mails for this customer were queued since ``since`` (the hourly limit)."""
        rows = self._q(
            "SELECT created_at FROM outbox WHERE customer_id = ? AND informational = ? AND created_at > ? "
            "AND status IN ('ready', 'sending', 'sent')",
            (customer_id, True, since),
        ).fetchall()
        return [float(r[0]) for r in rows]


def _claimed(r: Any, events: tuple[SourceEvent, ...]) -> ClaimedEntry:
    entry = ReadyEntry(r[0], r[1], r[2], r[3], bool(r[4]), tuple(r[5].split()))
    status = Status(r[6])
    mail = (RenderedMail(r[9], r[10], r[11], r[12], r[13], bytes(r[14]))
            if status is Status.SENDING and r[14] is not None else None)
    failure = Failure(r[15], r[16] or "") if status is Status.FAILED else None
    return ClaimedEntry(entry, status, int(r[7]), None if r[8] is None else float(r[8]), events, mail, failure)
