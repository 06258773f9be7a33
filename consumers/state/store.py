"""The state store: one small interface, SQLite (embedded default) or PostgreSQL (several consumers).

Every policy decision is one transaction (:meth:`StateStore.transaction`), so a
crash leaves either all of a decision or none of it. Calls are blocking and
serialised by a lock; the async side runs them in a worker thread.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from consumers.exceptions import StateStoreError, StateStoreUnavailable
from consumers.state.schema import statements

log = logging.getLogger(__name__)

_SCHEMA_LOCK = 0x6F6E5F7363686D61  # "on_schma": the advisory lock key for creating the tables


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """An e-mail about to be sent, with the exact bytes, so a resend after a crash is the same message."""

    notification_id: str
    order_id: str
    customer_id: str
    template: str
    informational: bool
    message_id: str
    event_ids: tuple[str, ...]
    subject: str
    locale: str
    mail_from: str
    rcpt_to: str
    data: bytes


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An event waiting in a window, with where it came from (for the dead-letter topic if it fails)."""

    event_id: str
    event: bytes
    src_topic: str
    src_partition: int
    src_offset: int


@dataclass(frozen=True, slots=True)
class DueGroup:
    order_id: str
    group: str
    customer_id: str
    due_at: float


class _Cursor(Protocol):
    rowcount: int

    def fetchall(self) -> list[Any]: ...

    def fetchone(self) -> Any: ...


class StateTx:
    """The primitives a decision needs, inside one transaction."""

    def __init__(self, execute: Any) -> None:
        self._execute = execute

    def _q(self, sql: str, params: tuple[Any, ...] = ()) -> _Cursor:
        cursor: _Cursor = self._execute(sql, params)
        return cursor

    # -- redelivery
    def claim_event(self, event_id: str, order_id: str, now: float) -> bool:
        """Record ``event_id`` as processed; False if it was processed before (a redelivery)."""
        cursor = self._q(
            "INSERT INTO processed_events (event_id, order_id, processed_at) VALUES (?, ?, ?) "
            "ON CONFLICT (event_id) DO NOTHING",
            (event_id, order_id, now),
        )
        return cursor.rowcount == 1

    # -- what the customer knows
    def facts(self, order_id: str) -> frozenset[str]:
        rows = self._q("SELECT fact FROM order_facts WHERE order_id = ?", (order_id,)).fetchall()
        return frozenset(row[0] for row in rows)

    def add_facts(self, order_id: str, facts: Iterable[str]) -> None:
        for fact in facts:
            self._q(
                "INSERT INTO order_facts (order_id, fact) VALUES (?, ?) ON CONFLICT (order_id, fact) DO NOTHING",
                (order_id, fact),
            )

    # -- preferences
    def opted_out(self, customer_id: str) -> bool:
        row = self._q("SELECT informational FROM preferences WHERE customer_id = ?", (customer_id,)).fetchone()
        return row is not None and not bool(row[0])

    def set_preferences(self, customer_id: str, informational: bool, updated_at: float) -> None:
        """Keep the newest preference per customer, whatever order updates arrive in."""
        self._q(
            "INSERT INTO preferences (customer_id, informational, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (customer_id) DO UPDATE SET informational = excluded.informational, "
            "updated_at = excluded.updated_at WHERE preferences.updated_at <= excluded.updated_at",
            (customer_id, informational, updated_at),
        )

    # -- pending windows
    def release_events(self, order_id: str, event_ids: Iterable[str], facts: Iterable[str]) -> None:
        """Forget that these events were handled (their e-mail failed for good), so a replay can send them."""
        for event_id in event_ids:
            self._q("DELETE FROM processed_events WHERE event_id = ?", (event_id,))
        for fact in facts:
            self._q("DELETE FROM order_facts WHERE order_id = ? AND fact = ?", (order_id, fact))

    def hold(self, pending: PendingEvent, order_id: str, group: str, customer_id: str, occurred_at: float,
             due_at: float) -> float:
        """Add an event to its order's pending group (opening the window if none); returns the group's due time."""
        self._q(
            "INSERT INTO pending_groups (order_id, grp, customer_id, due_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (order_id, grp) DO NOTHING",
            (order_id, group, customer_id, due_at),
        )
        self._q(
            "INSERT INTO pending_events (event_id, order_id, grp, occurred_at, event, src_topic, src_partition, "
            "src_offset) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            (pending.event_id, order_id, group, occurred_at, pending.event, pending.src_topic, pending.src_partition,
             pending.src_offset),
        )
        row = self._q("SELECT due_at FROM pending_groups WHERE order_id = ? AND grp = ?", (order_id, group)).fetchone()
        return float(row[0])

    def claim_due_groups(self, now: float, lease_until: float, limit: int) -> list[DueGroup]:
        # The lease test is repeated outside the subquery: PostgreSQL re-checks only the outer WHERE on a row
        # that a concurrent claim updated meanwhile, so without it two consumers could claim the same group.
        rows = self._q(
            "UPDATE pending_groups SET claimed_until = ? WHERE (claimed_until IS NULL OR claimed_until < ?) "
            "AND (order_id, grp) IN ("
            " SELECT order_id, grp FROM pending_groups WHERE due_at <= ? "
            " AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY due_at LIMIT ?) "
            "RETURNING order_id, grp, customer_id, due_at",
            (lease_until, now, now, now, limit),
        ).fetchall()
        return [DueGroup(r[0], r[1], r[2], float(r[3])) for r in rows]

    def group_events(self, order_id: str, group: str) -> list[PendingEvent]:
        rows = self._q(
            "SELECT event_id, event, src_topic, src_partition, src_offset FROM pending_events "
            "WHERE order_id = ? AND grp = ? ORDER BY occurred_at, event_id",
            (order_id, group),
        ).fetchall()
        return [PendingEvent(r[0], bytes(r[1]), r[2], int(r[3]), int(r[4])) for r in rows]

    def finish_group(self, order_id: str, group: str, event_ids: Iterable[str]) -> None:
        """Drop the events an e-mail covered; events that joined meanwhile keep the group open."""
        for event_id in event_ids:
            self._q("DELETE FROM pending_events WHERE event_id = ?", (event_id,))
        left = self._q(
            "SELECT COUNT(*) FROM pending_events WHERE order_id = ? AND grp = ?", (order_id, group)
        ).fetchone()[0]
        if left:
            self._q("UPDATE pending_groups SET claimed_until = NULL WHERE order_id = ? AND grp = ?", (order_id, group))
        else:
            self._q("DELETE FROM pending_groups WHERE order_id = ? AND grp = ?", (order_id, group))

    def postpone_group(self, order_id: str, group: str, due_at: float) -> None:
        self._q(
            "UPDATE pending_groups SET due_at = ?, claimed_until = NULL WHERE order_id = ? AND grp = ?",
            (due_at, order_id, group),
        )

    def pending_count(self, due_before: float | None = None) -> int:
        """Open windows (all, or only those due before a time)."""
        if due_before is None:
            return int(self._q("SELECT COUNT(*) FROM pending_groups").fetchone()[0])
        return int(self._q("SELECT COUNT(*) FROM pending_groups WHERE due_at < ?", (due_before,)).fetchone()[0])

    # -- outbox: intent and outcome of every send
    def add_outbox(self, entry: OutboxEntry, now: float, lease_until: float) -> bool:
        """Record the intent to send; False if this notification was recorded before."""
        cursor = self._q(
            "INSERT INTO outbox (notification_id, order_id, customer_id, template, informational, message_id, "
            "event_ids, subject, locale, mail_from, rcpt_to, data, status, created_at, claimed_until) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'sending', ?, ?) ON CONFLICT (notification_id) DO NOTHING",
            (entry.notification_id, entry.order_id, entry.customer_id, entry.template, entry.informational,
             entry.message_id, " ".join(entry.event_ids), entry.subject, entry.locale, entry.mail_from,
             entry.rcpt_to, entry.data, now, lease_until),
        )
        return cursor.rowcount == 1

    def mark_sent(self, notification_id: str, now: float) -> None:
        self._q(
            "UPDATE outbox SET status = 'sent', sent_at = ?, data = NULL, claimed_until = NULL "
            "WHERE notification_id = ?",
            (now, notification_id),
        )

    def mark_failed(self, notification_id: str, now: float) -> None:
        """Permanently rejected: dead-lettered, never retried from the outbox."""
        self._q(
            "UPDATE outbox SET status = 'failed', sent_at = ?, claimed_until = NULL WHERE notification_id = ?",
            (now, notification_id),
        )

    def claim_unsent(self, now: float, lease_until: float, limit: int, ignore_leases: bool) -> list[OutboxEntry]:
        """Outbox entries whose sender died before recording the outcome: to be sent again, same bytes."""
        # Conditions repeated outside the subquery for PostgreSQL's re-check, as in claim_due_groups.
        condition = "" if ignore_leases else " AND (claimed_until IS NULL OR claimed_until < ?)"
        lease: tuple[Any, ...] = () if ignore_leases else (now,)
        params: tuple[Any, ...] = (lease_until, *lease, *lease, limit)
        rows = self._q(
            f"UPDATE outbox SET claimed_until = ? WHERE status = 'sending'{condition} AND notification_id IN ("
            f" SELECT notification_id FROM outbox WHERE status = 'sending'{condition} ORDER BY created_at LIMIT ?) "
            "RETURNING notification_id, order_id, customer_id, template, informational, message_id, event_ids, "
            "subject, locale, mail_from, rcpt_to, data",
            params,
        ).fetchall()
        return [
            OutboxEntry(r[0], r[1], r[2], r[3], bool(r[4]), r[5], tuple(r[6].split()), r[7], r[8], r[9], r[10],
                        bytes(r[11]))
            for r in rows
        ]

    def informational_sent_since(self, customer_id: str, since: float) -> list[float]:
        rows = self._q(
            "SELECT created_at FROM outbox WHERE customer_id = ? AND informational = ? AND created_at > ? "
            "AND status <> 'failed'",
            (customer_id, True, since),
        ).fetchall()
        return [float(r[0]) for r in rows]


class StateStore:
    """A connection to the store; ``exclusive`` means one consumer owns it (SQLite)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        if url.startswith("sqlite:///"):
            self.dialect, self.exclusive = "sqlite", True
        elif url.startswith(("postgresql://", "postgres://")):
            self.dialect, self.exclusive = "postgresql", False
        else:
            raise StateStoreError(f"unsupported state URL {url!r}: use sqlite:///PATH or postgresql://...")
        self._conn: Any = None
        with self._lock:
            self._connect()
            self._create_tables()

    def _create_tables(self) -> None:
        if self.dialect == "sqlite":
            for statement in statements(self.dialect):
                self._run(statement, ())
            return
        # Consumers starting together on an empty schema would race in CREATE TABLE IF NOT EXISTS
        # (UniqueViolation on the catalog): one transaction at a time, under an advisory lock.
        with self._conn.transaction():
            self._run("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            for statement in statements(self.dialect):
                self._run(statement, ())

    def _connect(self) -> None:
        if self.dialect == "sqlite":
            path = self.url[len("sqlite:///"):] or ":memory:"
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL: survives a process crash, not a power cut
            return
        import psycopg

        try:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise StateStoreUnavailable(f"PostgreSQL state store unreachable: {exc}") from exc

    def _run(self, sql: str, params: tuple[Any, ...]) -> Any:
        if self.dialect == "postgresql":
            sql = sql.replace("?", "%s")
        return self._conn.execute(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[StateTx]:
        with self._lock:
            if self.dialect == "sqlite":
                yield from self._sqlite_tx()
            else:
                yield from self._postgres_tx()

    def _sqlite_tx(self) -> Iterator[StateTx]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield StateTx(self._run)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _postgres_tx(self) -> Iterator[StateTx]:
        import psycopg

        try:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._connect()
            with self._conn.transaction():
                yield StateTx(self._run)
        except psycopg.OperationalError as exc:
            raise StateStoreUnavailable(f"PostgreSQL state store unavailable: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def open_store(url: str) -> StateStore:
    return StateStore(url)
