"""The state store: one small interface, SQLite (embedded default) or PostgreSQL (several consumers).

It holds what the decisions need (events seen, what each order's customer knows, preferences, open
windows) and the outbox between the two stages (:mod:`consumers.state.outbox`). A poll batch's
decisions are one transaction (:meth:`StateStore.transaction`), so a crash leaves all of them or none.
Calls are blocking and serialised by a lock; the async side runs them in a worker thread. Both
databases' errors leave here as the project's own: :class:`StateStoreUnavailable` (retriable: locked,
disk I/O, connection lost) or :class:`StateStoreError`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from consumers.exceptions import StateStoreError, StateStoreUnavailable, StateStoreUnreachable
from consumers.state.outbox import OutboxQueries, SourceEvent
from consumers.state.schema import ADDED_TABLES_SINCE, VERSION, statements
from ordernotify.errors import OrderNotifyError
from schemas.codec import EventCodec
from schemas.suppressions import SuppressionReason, SuppressionRecord

log = logging.getLogger(__name__)

_EVENTS = EventCodec()
_SCHEMA_LOCK = 0x6F6E5F7363686D61  # "on_schma": the advisory lock key for creating the tables


PendingEvent = SourceEvent  # an event waiting in a window: the same fields as one an e-mail covers


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
        self.outbox = OutboxQueries(self._q)

    def _q(self, sql: str, params: tuple[Any, ...] = ()) -> _Cursor:
        cursor: _Cursor = self._execute(sql, params)
        return cursor

    # -- redelivery
    def claim_event(self, event_id: str, order_id: str, customer_id: str, now: float) -> bool:
        """Record ``event_id`` as processed; False if it was processed before (a redelivery)."""
        cursor = self._q(
            "INSERT INTO processed_events (event_id, order_id, customer_id, processed_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (event_id) DO NOTHING",
            (event_id, order_id, customer_id, now),
        )
        return cursor.rowcount == 1

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Roll back only what the block wrote if it raises (one event of a batch), keeping the rest."""
        self._q("SAVEPOINT one_event")
        try:
            yield
        except BaseException:
            self._q("ROLLBACK TO SAVEPOINT one_event")
            self._q("RELEASE SAVEPOINT one_event")
            raise
        self._q("RELEASE SAVEPOINT one_event")

    # -- what the customer knows
    def facts(self, order_id: str) -> frozenset[str]:
        rows = self._q("SELECT fact FROM order_facts WHERE order_id = ?", (order_id,)).fetchall()
        return frozenset(row[0] for row in rows)

    def add_facts(self, order_id: str, facts: Iterable[str], now: float) -> None:
        for fact in facts:
            self._q(
                "INSERT INTO order_facts (order_id, fact, added_at) VALUES (?, ?, ?) "
                "ON CONFLICT (order_id, fact) DO NOTHING",
                (order_id, fact, now),
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

    # -- the suppression list (a copy of the compacted suppressions topic)
    def suppression(self, address_digest: str) -> SuppressionRecord | None:
        """What the list says of the address (in force or not), or None. Only what a send decision and its
        history line need is kept: no detail, no ids."""
        row = self._q("SELECT reason, first_at, last_at, count, suppressed_until, lifted_at FROM suppressions "
                      "WHERE address_digest = ?", (address_digest,)).fetchone()
        if row is None:
            return None
        return SuppressionRecord(address_digest, SuppressionReason(row[0]), _dt(row[1]), _dt(row[2]), int(row[3]),
                                 None if row[4] is None else _dt(row[4]), lifted_at=None if row[5] is None
                                 else _dt(row[5]))

    def set_suppression(self, record: SuppressionRecord) -> None:
        """Keep the newest record per address (by its last change), whatever order they arrive in."""
        lifted = None if record.lifted_at is None else record.lifted_at.timestamp()
        until = None if record.suppressed_until is None else record.suppressed_until.timestamp()
        changed = max(record.last_at.timestamp(), lifted or 0.0)
        self._q(
            "INSERT INTO suppressions (address_digest, reason, first_at, last_at, count, suppressed_until, lifted_at, "
            "changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (address_digest) DO UPDATE SET "
            "reason = excluded.reason, first_at = excluded.first_at, last_at = excluded.last_at, "
            "count = excluded.count, suppressed_until = excluded.suppressed_until, lifted_at = excluded.lifted_at, "
            "changed_at = excluded.changed_at WHERE suppressions.changed_at <= excluded.changed_at",
            (record.address_digest, record.reason.value, record.first_at.timestamp(), record.last_at.timestamp(),
             record.count, until, lifted, changed),
        )

    def forget_suppression(self, address_digest: str) -> None:
        """The topic's tombstone for the address: the list no longer names it."""
        self._q("DELETE FROM suppressions WHERE address_digest = ?", (address_digest,))

    # -- pending windows
    def release_events(self, order_id: str, event_ids: Iterable[str], facts: Iterable[str]) -> None:
        """Forget that these events were handled (their e-mail failed for good), so a replay can send them."""
        for event_id in event_ids:
            self._q("DELETE FROM processed_events WHERE event_id = ?", (event_id,))
        for fact in facts:
            self._q("DELETE FROM order_facts WHERE order_id = ? AND fact = ?", (order_id, fact))

    def hold(self, pending: PendingEvent, order_id: str, group: str, customer_id: str, occurred_at: float,
             due_at: float) -> float:
        """Add an event to its order's pending group (opening the window if none); returns the group's due time.

        The upsert locks the window's row (DO NOTHING would not): a dispatcher closing the same window in
        another transaction either waits for this one and sees the event, or has deleted the window first,
        and then this opens a new one. Without the lock, an event could join a window that is being closed
        and be left behind without one (two consumers on PostgreSQL)."""
        row = self._q(
            "INSERT INTO pending_groups (order_id, grp, customer_id, due_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (order_id, grp) DO UPDATE SET customer_id = pending_groups.customer_id RETURNING due_at",
            (order_id, group, customer_id, due_at),
        ).fetchone()
        self._q(
            "INSERT INTO pending_events (event_id, order_id, grp, occurred_at, event, src_topic, src_partition, "
            "src_offset) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            (pending.event_id, order_id, group, occurred_at, pending.event, pending.src_topic, pending.src_partition,
             pending.src_offset),
        )
        return float(row[0])

    def claim_due_groups(self, now: float, lease_until: float, limit: int) -> list[DueGroup]:
        # The lease test is repeated outside the subquery: PostgreSQL re-checks only the outer WHERE on a row
        # that a concurrent claim updated meanwhile, so without it two consumers could claim the same group.
        rows = self._q(
            "UPDATE pending_groups SET claimed_until = ? WHERE (claimed_until IS NULL OR claimed_until < ?) "
            "AND due_at <= ? AND (order_id, grp) IN ("
            " SELECT order_id, grp FROM pending_groups WHERE due_at <= ? "
            " AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY due_at LIMIT ?) "
            "RETURNING order_id, grp, customer_id, due_at",
            (lease_until, now, now, now, now, limit),
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

    def has_pending_group(self, order_id: str, group: str) -> bool:
        return self._q("SELECT 1 FROM pending_groups WHERE order_id = ? AND grp = ?", (order_id, group)).fetchone() \
            is not None

    def pending_of_order(self, order_id: str) -> list[tuple[str, PendingEvent]]:
        """Every event waiting in one of the order's windows, with its group.

        The windows' rows are locked first (an update that changes nothing): a dispatcher closing one of them
        in another transaction either has finished (its events are gone here) or waits for this one."""
        self._q("UPDATE pending_groups SET customer_id = customer_id WHERE order_id = ?", (order_id,))
        rows = self._q(
            "SELECT grp, event_id, event, src_topic, src_partition, src_offset FROM pending_events "
            "WHERE order_id = ? ORDER BY occurred_at, event_id",
            (order_id,),
        ).fetchall()
        return [(r[0], PendingEvent(r[1], bytes(r[2]), r[3], int(r[4]), int(r[5]))) for r in rows]

    def drop_pending(self, order_id: str, group: str, event_ids: Iterable[str]) -> list[str]:
        """Take events out of their window unsent (later news made them pointless); returns those taken out.
        A window left empty is closed."""
        dropped = [event_id for event_id in event_ids
                   if self._q("DELETE FROM pending_events WHERE event_id = ?", (event_id,)).rowcount]
        left = self._q(
            "SELECT COUNT(*) FROM pending_events WHERE order_id = ? AND grp = ?", (order_id, group)
        ).fetchone()[0]
        if not left:
            self._q("DELETE FROM pending_groups WHERE order_id = ? AND grp = ?", (order_id, group))
        return dropped

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

    # -- retention and erasure
    def prune(self, before: float) -> dict[str, int]:
        """Forget what no decision needs any more: events and facts last touched before ``before`` (beyond
        the age at which events are suppressed as too old) and finished outbox rows."""
        removed = {
            "processed_events": self._q("DELETE FROM processed_events WHERE processed_at < ?", (before,)).rowcount,
            "order_facts": self._q("DELETE FROM order_facts WHERE added_at < ?", (before,)).rowcount,
            "outbox": self._q("DELETE FROM outbox WHERE status IN ('sent', 'dead_lettered', 'not_sent') "
                              "AND created_at < ?",
                              (before,)).rowcount,
        }
        return {table: int(count) for table, count in removed.items()}

    def customer_addresses(self, customer_id: str) -> set[str]:
        """The e-mail addresses the store still knows for one customer (before :meth:`forget_customer`), so that
        an erasure can find their suppressions, which are keyed by address: the recipient of an e-mail not yet
        done, and the customer's address in the events of open windows and of e-mails not yet done. An e-mail
        that is done keeps neither, so a customer whose e-mails all went out may have none here."""
        addresses = {str(r[0]) for r in self._q("SELECT rcpt_to FROM outbox WHERE customer_id = ? AND rcpt_to "
                                                "IS NOT NULL", (customer_id,)).fetchall()}
        events = self._q("SELECT e.event FROM outbox_events e JOIN outbox o ON o.notification_id = e.notification_id "
                         "WHERE o.customer_id = ?", (customer_id,)).fetchall()
        events += self._q("SELECT e.event FROM pending_events e JOIN pending_groups g ON g.order_id = e.order_id "
                          "AND g.grp = e.grp WHERE g.customer_id = ?", (customer_id,)).fetchall()
        for (data,) in events:
            try:
                customer = _EVENTS.decode(bytes(data), validate=False).customer
            except OrderNotifyError as exc:
                log.warning("an event of the customer to forget does not decode, its address not looked at: %s",
                            type(exc).__name__)
                continue
            if customer.customer_id == customer_id:
                addresses.add(customer.email)
        return addresses

    def forget_customer(self, customer_id: str) -> dict[str, int]:
        """Erase what the store keeps about one customer (right to erasure); how many rows per table."""
        orders = [r[0] for r in self._q("SELECT DISTINCT order_id FROM processed_events WHERE customer_id = ?",
                                        (customer_id,)).fetchall()]
        orders += [r[0] for r in self._q("SELECT DISTINCT order_id FROM outbox WHERE customer_id = ?",
                                         (customer_id,)).fetchall()]
        orders += [r[0] for r in self._q("SELECT DISTINCT order_id FROM pending_groups WHERE customer_id = ?",
                                         (customer_id,)).fetchall()]
        removed: dict[str, int] = dict.fromkeys(
            ("outbox", "outbox_events", "pending_events", "pending_groups", "order_facts", "processed_events",
             "preferences"), 0)
        for order_id in sorted(set(orders)):
            removed["outbox_events"] += self._q(
                "DELETE FROM outbox_events WHERE notification_id IN (SELECT notification_id FROM outbox "
                "WHERE order_id = ?)", (order_id,)).rowcount
            for table in ("outbox", "pending_events", "pending_groups", "order_facts", "processed_events"):
                removed[table] += self._q(f"DELETE FROM {table} WHERE order_id = ?", (order_id,)).rowcount
        removed["preferences"] = self._q("DELETE FROM preferences WHERE customer_id = ?", (customer_id,)).rowcount
        return {table: int(count) for table, count in removed.items()}


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
        self._upgrading = False
        with self._lock:
            self._connect()
            self._create_tables()

    def _create_tables(self) -> None:
        if self.dialect == "sqlite":
            with _sqlite_errors():
                self._check_version()
                for statement in statements(self.dialect):
                    self._run(statement, ())
                self._stamp_version()
            return
        # Consumers starting together on an empty schema would race in CREATE TABLE IF NOT EXISTS
        # (UniqueViolation on the catalog): one transaction at a time, under an advisory lock.
        with self._conn.transaction():
            self._run("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            self._check_version()
            for statement in statements(self.dialect):
                self._run(statement, ())
            self._stamp_version()

    def _tables(self) -> set[str]:
        if self.dialect == "sqlite":
            rows = self._run("SELECT name FROM sqlite_master WHERE type = 'table'", ()).fetchall()
        else:
            rows = self._run("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                             "current_schema()", ()).fetchall()
        return {r[0] for r in rows}

    def _check_version(self) -> None:
        """A store that an older ordernotify wrote (no version, or another) is refused, not silently misread."""
        tables = self._tables()
        found = None
        if "store_meta" in tables:
            row = self._run("SELECT MAX(version) FROM store_meta", ()).fetchone()
            found = None if row is None else row[0]
        elif "outbox" in tables:
            found = 1
        if found in ADDED_TABLES_SINCE:
            log.info("state store at %s: layout version %s, adding %s for version %d", _safe_url(self.url), found,
                     ", ".join(ADDED_TABLES_SINCE[found]), VERSION)
            self._upgrading = True
            return
        if found is not None and found != VERSION:
            raise StateStoreError(
                f"the state store at {_safe_url(self.url)} has layout version {found}; this ordernotify needs "
                f"version {VERSION}. Let the consumers of the old version finish their open windows and outbox, "
                "then start this version with a new --state-url (an empty SQLite file or PostgreSQL schema)")

    def _stamp_version(self) -> None:
        if self._run("SELECT COUNT(*) FROM store_meta", ()).fetchone()[0] == 0:
            self._run("INSERT INTO store_meta (version) VALUES (?)", (VERSION,))
        elif self._upgrading:  # the tables added since the store's version exist now
            self._run("UPDATE store_meta SET version = ?", (VERSION,))

    def _connect(self) -> None:
        if self.dialect == "sqlite":
            path = self.url[len("sqlite:///"):] or ":memory:"
            with _sqlite_errors():
                self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL: survives a process crash, not a power cut
            return
        import psycopg

        started = time.monotonic()
        try:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            # psycopg: 'connection failed: connection to server at "HOST", port N failed: Connection refused\n\tIs...'
            reason = str(exc).strip().splitlines()[0].rpartition(": ")[2] if str(exc).strip() else type(exc).__name__
            raise StateStoreUnreachable("the PostgreSQL state store", _safe_url(self.url),
                                        time.monotonic() - started, "--state-url", reason) from exc

    def _run(self, sql: str, params: tuple[Any, ...]) -> Any:
        """One statement; the driver's errors become the project's here, so that a caller inside a transaction
        (a savepoint around one event) tells a store that is away (retriable) from a bug."""
        if self.dialect == "sqlite":
            with _sqlite_errors():
                return self._conn.execute(sql, params)
        import psycopg

        try:
            return self._conn.execute(sql.replace("?", "%s"), params)
        except psycopg.OperationalError as exc:  # connection lost, deadlock, lock or statement timeout
            raise StateStoreUnavailable(f"PostgreSQL state store unavailable: {exc}") from exc
        except psycopg.Error as exc:
            raise StateStoreError(f"PostgreSQL state store error: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[StateTx]:
        with self._lock:
            if self.dialect == "sqlite":
                yield from self._sqlite_tx()
            else:
                yield from self._postgres_tx()

    def _sqlite_tx(self) -> Iterator[StateTx]:
        with _sqlite_errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield StateTx(self._run)
            except BaseException:
                if self._conn.in_transaction:  # SQLite may have rolled back on its own (disk full, I/O error)
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
        except psycopg.OperationalError as exc:  # connection lost, deadlock, serialization failure
            raise StateStoreUnavailable(f"PostgreSQL state store unavailable: {exc}") from exc
        except psycopg.Error as exc:
            raise StateStoreError(f"PostgreSQL state store error: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def open_store(url: str) -> StateStore:
    return StateStore(url)


@contextmanager
def _sqlite_errors() -> Iterator[None]:
    """SQLite's errors as the project's: locked, busy, disk I/O or disk full come and go (retriable); the rest
    (a corrupt file, a constraint the code broke) do not."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise StateStoreUnavailable(f"SQLite state store unavailable: {exc}") from exc
    except sqlite3.Error as exc:
        raise StateStoreError(f"SQLite state store error: {exc}") from exc


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(float(seconds), UTC)


def _safe_url(url: str) -> str:
    """The URL without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    return f"{scheme}{sep}{credentials.partition(':')[0]}@{host}"
