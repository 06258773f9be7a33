"""The state store's primitives behave the same on SQLite and PostgreSQL, roll back as a whole, and never hand one
due group to two consumers at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.exceptions import StateStoreError, StateStoreUnavailable
from consumers.state.outbox import Failure, ReadyEntry, RenderedMail, SentMail, Status
from consumers.state.store import DueGroup, PendingEvent, StateStore


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite in this test's directory, or a schema of this test's own on PostgreSQL (``postgres_url``, which
    skips when no PostgreSQL is reachable)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[StateStore]:
    opened = StateStore(store_url)
    try:
        yield opened
    finally:
        opened.close()


def _pending(event_id: str, offset: int = 0) -> PendingEvent:
    return PendingEvent(event_id, f"bytes of {event_id}".encode(), "orders.events", 1, offset)


def _entry(notification_id: str, customer_id: str = "cust-1", informational: bool = True,
           order_id: str = "1234") -> ReadyEntry:
    return ReadyEntry(notification_id, order_id, customer_id, "shipped", informational, ("e1", "e2"))


def _mail(notification_id: str, data: bytes = b"Subject: hi\r\n\r\nbody") -> RenderedMail:
    return RenderedMail(f"<{notification_id}@ordernotify>", "Your order has shipped", "en", "shop@example.org",
                        "ada@example.org", data)


def _queue(store: StateStore, notification_id: str, now: float, **fields: Any) -> bool:
    with store.transaction() as tx:
        return tx.outbox.add_ready(_entry(notification_id, **fields), [_pending("e1", 7), _pending("e2", 8)], now)


def _take(store: StateStore, now: float, owner: str = "me", lease_s: float = 30.0, limit: int = 10,
          ignore_leases: bool = False) -> list[str]:
    with store.transaction() as tx:
        return [c.entry.notification_id for c in tx.outbox.claim(now, owner, now + lease_s, limit, ignore_leases)]


def _hold(store: StateStore, event_id: str, order_id: str, due_at: float, group: str = "shipping",
          occurred_at: float = 0.0) -> float:
    with store.transaction() as tx:
        return tx.hold(_pending(event_id), order_id, group, "cust-1", occurred_at, due_at)


def _claim(store: StateStore, now: float, lease_s: float = 60.0, limit: int = 100) -> list[DueGroup]:
    with store.transaction() as tx:
        return tx.claim_due_groups(now, now + lease_s, limit)


def _outbox_row(store: StateStore, notification_id: str) -> tuple[Any, ...]:
    """Peek at one outbox row (status, data, sent_at): what the public primitives do not return."""
    with store.transaction() as tx:
        row = tx._q("SELECT status, data, sent_at FROM outbox WHERE notification_id = ?", (notification_id,))
        return tuple(row.fetchone())


# -- redelivery and facts ---------------------------------------------------------------------


def test_claim_event_is_true_once_then_false_for_a_redelivery(store: StateStore) -> None:
    with store.transaction() as tx:
        assert tx.claim_event("e1", "1234", "cust-1", 100.0) is True
    with store.transaction() as tx:
        assert tx.claim_event("e1", "1234", "cust-1", 200.0) is False
        assert tx.claim_event("e2", "1234", "cust-1", 200.0) is True


def test_facts_are_added_once_and_read_per_order(store: StateStore) -> None:
    with store.transaction() as tx:
        assert tx.facts("1234") == frozenset()
        tx.add_facts("1234", ["placed", "shipped:SHIP-1"], 1.0)
    with store.transaction() as tx:
        tx.add_facts("1234", ["shipped:SHIP-1", "delivered:SHIP-1"], 2.0)
        tx.add_facts("5678", ["placed"], 2.0)
    with store.transaction() as tx:
        assert tx.facts("1234") == frozenset({"placed", "shipped:SHIP-1", "delivered:SHIP-1"})
        assert tx.facts("5678") == frozenset({"placed"})


def test_preferences_keep_the_newest_whatever_the_arrival_order(store: StateStore) -> None:
    with store.transaction() as tx:
        assert tx.opted_out("cust-1") is False  # no preference: informational e-mails are on
        tx.set_preferences("cust-1", informational=False, updated_at=200.0)
    with store.transaction() as tx:
        tx.set_preferences("cust-1", informational=True, updated_at=100.0)  # older, arrived late
    with store.transaction() as tx:
        assert tx.opted_out("cust-1") is True
        tx.set_preferences("cust-1", informational=True, updated_at=300.0)
    with store.transaction() as tx:
        assert tx.opted_out("cust-1") is False
        assert tx.opted_out("cust-2") is False


# -- pending windows --------------------------------------------------------------------------


def test_hold_opens_the_window_once_and_keeps_the_first_due_time(store: StateStore) -> None:
    assert _hold(store, "e1", "1234", due_at=100.0, occurred_at=20.0) == 100.0
    assert _hold(store, "e2", "1234", due_at=150.0, occurred_at=10.0) == 100.0
    assert _hold(store, "e1", "1234", due_at=190.0, occurred_at=20.0) == 100.0  # the same event again: no change
    assert _hold(store, "e3", "1234", due_at=160.0, group="stock") == 160.0  # another group, its own window
    with store.transaction() as tx:
        assert [p.event_id for p in tx.group_events("1234", "shipping")] == ["e2", "e1"]  # by occurred_at
        assert tx.group_events("1234", "shipping")[1] == _pending("e1")
        assert tx.pending_count() == 2


def test_claim_due_groups_returns_only_due_unclaimed_groups_and_respects_the_lease(store: StateStore) -> None:
    _hold(store, "e1", "A", due_at=100.0)
    _hold(store, "e2", "B", due_at=200.0)
    _hold(store, "e3", "C", due_at=50.0)
    assert sorted((g.order_id, g.due_at) for g in _claim(store, now=150.0)) == [("A", 100.0), ("C", 50.0)]
    assert _claim(store, now=160.0) == []  # within the lease (until 210)
    assert [g.order_id for g in _claim(store, now=205.0)] == ["B"]  # due now; C and A still leased
    assert sorted(g.order_id for g in _claim(store, now=211.0)) == ["A", "C"]  # their lease ran out
    claimed = _claim(store, now=300.0, limit=1)
    assert len(claimed) == 1
    assert claimed[0] == DueGroup("C", "shipping", "cust-1", 50.0)


def test_finish_group_with_an_event_that_joined_meanwhile_keeps_the_group_and_releases_the_claim(
    store: StateStore,
) -> None:
    _hold(store, "e1", "1234", due_at=100.0)
    assert len(_claim(store, now=100.0)) == 1
    _hold(store, "e2", "1234", due_at=999.0)  # joined while the e-mail for e1 was being sent
    with store.transaction() as tx:
        tx.finish_group("1234", "shipping", ["e1"])
    with store.transaction() as tx:
        assert [p.event_id for p in tx.group_events("1234", "shipping")] == ["e2"]
        assert tx.pending_count() == 1
    assert [g.due_at for g in _claim(store, now=101.0)] == [100.0]  # claimable again at once
    with store.transaction() as tx:
        tx.finish_group("1234", "shipping", ["e2"])
    with store.transaction() as tx:
        assert tx.pending_count() == 0
        assert tx.group_events("1234", "shipping") == []


def test_postpone_group_moves_the_due_time_and_releases_the_claim(store: StateStore) -> None:
    _hold(store, "e1", "1234", due_at=100.0)
    assert len(_claim(store, now=100.0)) == 1
    with store.transaction() as tx:
        tx.postpone_group("1234", "shipping", 500.0)
    assert _claim(store, now=499.0) == []
    assert [g.due_at for g in _claim(store, now=500.0)] == [500.0]


def test_pending_count_all_or_due_before_a_time(store: StateStore) -> None:
    for order_id, due_at in (("A", 100.0), ("B", 200.0), ("C", 300.0)):
        _hold(store, f"e-{order_id}", order_id, due_at=due_at)
    with store.transaction() as tx:
        assert tx.pending_count() == 3
        assert tx.pending_count(due_before=200.0) == 1
        assert tx.pending_count(due_before=200.5) == 2
        assert tx.pending_count(due_before=50.0) == 0


# -- outbox -----------------------------------------------------------------------------------


def test_an_entry_is_queued_once_with_its_events_and_claimed_with_them(store: StateStore) -> None:
    assert _queue(store, "n1", now=100.0) is True
    assert _queue(store, "n1", now=150.0) is False  # a redelivery or a re-flushed window
    with store.transaction() as tx:
        (claimed,) = tx.outbox.claim(200.0, "me", 230.0, 10)
    assert claimed.entry == _entry("n1") and claimed.status is Status.READY and claimed.mail is None
    assert claimed.events == (_pending("e1", 7), _pending("e2", 8))
    assert claimed.attempts == 0 and claimed.first_tried_at is None


def test_a_claim_holds_until_its_lease_runs_out_and_renewal_extends_it(store: StateStore) -> None:
    _queue(store, "n1", now=100.0)
    assert _take(store, now=100.0, owner="a") == ["n1"]
    assert _take(store, now=120.0, owner="b") == []  # a's lease until 130
    with store.transaction() as tx:
        assert tx.outbox.renew("a", ["n1"], 160.0) == {"n1"}
        assert tx.outbox.renew("b", ["n1"], 999.0) == set()  # only the holder renews
    assert _take(store, now=150.0, owner="b") == []
    assert _take(store, now=161.0, owner="b") == ["n1"]  # a is gone: b takes over
    assert _take(store, now=170.0, owner="c", ignore_leases=True) == ["n1"]  # a store of our own, at start


def test_the_exact_bytes_are_stored_before_sending_and_dropped_once_sent(store: StateStore) -> None:
    raw = b"Subject: =?utf-8?q?M=C3=BCller?=\r\n\r\n\x00\xff\xfe binary \r\n.\r\n"
    _queue(store, "n1", now=100.0)
    _take(store, now=100.0)
    with store.transaction() as tx:
        assert tx.outbox.store_rendered("n1", _mail("n1", raw), "me")
    (claimed,) = [c for c in _claim_all(store, now=200.0)]
    assert claimed.status is Status.SENDING and claimed.mail == _mail("n1", raw)
    with store.transaction() as tx:
        tx.outbox.mark_sent("n1", 205.0)
    assert _outbox_row(store, "n1") == ("sent", None, 205.0)
    assert _take(store, now=300.0, ignore_leases=True) == []
    with store.transaction() as tx:
        assert tx._q("SELECT COUNT(*) FROM outbox_events").fetchone()[0] == 0


def test_a_holder_whose_lease_was_taken_over_cannot_overwrite_the_new_holders_outcome(store: StateStore) -> None:
    _queue(store, "n1", now=100.0)
    assert _take(store, now=100.0, owner="a") == ["n1"]
    assert _take(store, now=131.0, owner="b") == ["n1"]  # a stalled past its lease: b holds it now
    with store.transaction() as tx:
        assert not tx.outbox.store_rendered("n1", _mail("n1"), "a")
        assert tx.outbox.store_rendered("n1", _mail("n1"), "b")
        assert tx.outbox.renew("a", ["n1"], 999.0) == set()
        tx.outbox.retry_later("n1", at=999.0, first_tried_at=1.0, error="x", owner="a")  # no effect
        tx.outbox.mark_sent("n1", 140.0)  # b's send went through
        assert not tx.outbox.mark_failed("n1", Failure("smtp_rejected", "550"), 141.0, "a", attempted=True)
    assert _outbox_row(store, "n1") == ("sent", None, 140.0)


def _claim_all(store: StateStore, now: float) -> list[Any]:
    with store.transaction() as tx:
        return tx.outbox.claim(now, "me", now + 30, 100, ignore_leases=True)


def test_retry_later_lets_go_until_the_time_and_counts_the_attempt(store: StateStore) -> None:
    _queue(store, "n1", now=100.0)
    _take(store, now=100.0)
    with store.transaction() as tx:
        tx.outbox.store_rendered("n1", _mail("n1"), "me")
        tx.outbox.retry_later("n1", at=150.0, first_tried_at=101.0, error="451 later", owner="me")
    assert _take(store, now=149.0, owner="b") == []
    with store.transaction() as tx:
        (claimed,) = tx.outbox.claim(151.0, "b", 181.0, 10)
    assert (claimed.attempts, claimed.first_tried_at, claimed.mail) == (1, 101.0, _mail("n1"))


def test_claims_honour_the_limit_oldest_first(store: StateStore) -> None:
    for i, created in enumerate((300.0, 100.0, 200.0)):
        _queue(store, f"n{i}", now=created)
    assert sorted(_take(store, now=400.0, limit=2)) == ["n1", "n2"]


def test_failed_keeps_the_events_until_dead_lettered_then_a_replay_may_queue_it_again(store: StateStore) -> None:
    with store.transaction() as tx:
        assert tx.claim_event("e1", "1234", "cust-1", 100.0)
        tx.add_facts("1234", ["placed", "shipped:SHIP-1"], 100.0)
    _queue(store, "n1", now=100.0)
    _take(store, now=100.0)
    with store.transaction() as tx:
        assert tx.outbox.mark_failed("n1", Failure("smtp_rejected", "550 no such user"), 110.0, "me", attempted=True)
    (claimed,) = _claim_all(store, now=200.0)  # whoever claims a failed entry dead-letters it
    assert claimed.status is Status.FAILED and claimed.failure == Failure("smtp_rejected", "550 no such user")
    assert len(claimed.events) == 2
    with store.transaction() as tx:
        assert tx.outbox.mark_dead_lettered("n1")
        assert not tx.outbox.mark_dead_lettered("n1")  # done once
        tx.release_events("1234", ["e1"], ["shipped:SHIP-1"])
    assert _outbox_row(store, "n1")[0] == "dead_lettered"
    assert _take(store, now=300.0, ignore_leases=True) == []  # never retried from the outbox
    with store.transaction() as tx:
        assert tx.facts("1234") == frozenset({"placed"})
        assert tx.claim_event("e1", "1234", "cust-1", 300.0) is True
        assert tx.outbox.backlog() == 0
    assert _queue(store, "n1", now=400.0) is True  # the replayed events: queued again
    assert _take(store, now=400.0) == ["n1"]


def test_informational_sent_since_counts_only_informational_entries_not_failed_after_the_time(
    store: StateStore,
) -> None:
    _queue(store, "old", now=50.0)
    _queue(store, "sent", now=100.0)
    _queue(store, "failed", now=110.0)
    _queue(store, "confirmation", now=120.0, informational=False)
    _queue(store, "other customer", now=130.0, customer_id="cust-2")
    _queue(store, "ready", now=140.0)
    _take(store, now=111.0, ignore_leases=True)
    with store.transaction() as tx:
        tx.outbox.mark_sent("sent", 101.0)
        assert tx.outbox.mark_failed("failed", Failure("smtp_rejected", "550"), 111.0, "me")
    with store.transaction() as tx:
        assert sorted(tx.outbox.informational_sent_since("cust-1", 60.0)) == [100.0, 140.0]
        assert tx.outbox.informational_sent_since("cust-1", 140.0) == []  # strictly after
        assert tx.outbox.informational_sent_since("cust-2", 0.0) == [130.0]


# -- retention and erasure ----------------------------------------------------------------------


def test_prune_forgets_old_event_ids_facts_and_finished_entries_but_keeps_open_work(store: StateStore) -> None:
    with store.transaction() as tx:
        tx.claim_event("old", "A", "cust-1", 100.0)
        tx.claim_event("new", "B", "cust-1", 900.0)
        tx.add_facts("A", ["placed"], 100.0)
        tx.add_facts("B", ["placed"], 900.0)
    _queue(store, "old-sent", now=100.0, order_id="A")
    _queue(store, "old-open", now=100.0, order_id="A")
    _queue(store, "new-sent", now=900.0, order_id="B")
    with store.transaction() as tx:
        tx.outbox.mark_sent("old-sent", 101.0)
        tx.outbox.mark_sent("new-sent", 901.0)
    with store.transaction() as tx:
        assert tx.prune(before=500.0) == {"processed_events": 1, "order_facts": 1, "outbox": 1}
    with store.transaction() as tx:
        assert tx.claim_event("old", "A", "cust-1", 1000.0) is True  # forgotten
        assert tx.claim_event("new", "B", "cust-1", 1000.0) is False
        assert tx.facts("B") == frozenset({"placed"}) and tx.facts("A") == frozenset()
        assert tx.outbox.backlog() == 1  # the open entry stays, however old
    assert _take(store, now=1000.0) == ["old-open"]


def test_forget_customer_erases_every_row_about_that_customer_and_nothing_else(store: StateStore) -> None:
    with store.transaction() as tx:
        tx.claim_event("e-a", "A", "cust-1", 100.0)
        tx.claim_event("e-b", "B", "cust-2", 100.0)
        tx.add_facts("A", ["placed"], 100.0)
        tx.add_facts("B", ["placed"], 100.0)
        tx.set_preferences("cust-1", informational=False, updated_at=1.0)
        tx.hold(_pending("e-w"), "W", "shipping", "cust-1", 1.0, 200.0)
    _queue(store, "n-a", now=100.0, order_id="A")
    _queue(store, "n-b", now=100.0, order_id="B", customer_id="cust-2")
    with store.transaction() as tx:
        removed = tx.forget_customer("cust-1")
    assert removed == {"outbox": 1, "outbox_events": 2, "pending_events": 1, "pending_groups": 1, "order_facts": 1,
                       "processed_events": 1, "preferences": 1}
    with store.transaction() as tx:
        assert tx.forget_customer("cust-1") == dict.fromkeys(removed, 0)
        assert tx.facts("B") == frozenset({"placed"}) and tx.outbox.backlog() == 1
        assert tx.pending_count() == 0


# -- errors -------------------------------------------------------------------------------------


def test_sqlite_locked_or_io_errors_are_retriable_store_errors_and_roll_back(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(f"sqlite:///{path}")
    import sqlite3

    blocker = sqlite3.connect(path, timeout=0, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
    store._conn.execute("PRAGMA busy_timeout = 50")
    try:
        with pytest.raises(StateStoreUnavailable, match="locked"), store.transaction() as tx:
            tx.claim_event("e1", "1234", "cust-1", 1.0)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    with store.transaction() as tx:  # the store works again, and nothing of the failed transaction is there
        assert tx.claim_event("e1", "1234", "cust-1", 2.0) is True
    store.close()


def test_a_sqlite_error_raised_inside_a_transaction_is_wrapped_and_the_store_stays_usable(store: StateStore,
                                                                                           store_url: str) -> None:
    with pytest.raises(StateStoreError), store.transaction() as tx:
        tx.claim_event("e1", "1234", "cust-1", 1.0)
        tx._q("INSERT INTO no_such_table VALUES (1)")
    with store.transaction() as tx:
        assert tx.claim_event("e1", "1234", "cust-1", 2.0) is True


def test_a_store_written_by_an_older_layout_is_refused_with_what_to_do(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE outbox (notification_id TEXT PRIMARY KEY)")
    old.commit()
    old.close()
    with pytest.raises(StateStoreError, match="layout version 1.*new --state-url"):
        StateStore(f"sqlite:///{path}")


# -- transactions -----------------------------------------------------------------------------


class _Boom(Exception):
    pass


def test_a_transaction_that_raises_is_rolled_back_entirely(store: StateStore) -> None:
    with pytest.raises(_Boom), store.transaction() as tx:
        assert tx.claim_event("e1", "1234", "cust-1", 100.0)
        tx.add_facts("1234", ["placed"], 100.0)
        tx.set_preferences("cust-1", informational=False, updated_at=100.0)
        tx.hold(_pending("e1"), "1234", "shipping", "cust-1", 90.0, 150.0)
        tx.outbox.add_ready(_entry("n1"), [_pending("e1")], 100.0)
        raise _Boom
    with store.transaction() as tx:  # nothing of it is visible, and the store still works
        assert tx.facts("1234") == frozenset()
        assert tx.opted_out("cust-1") is False
        assert tx.pending_count() == 0
        assert tx.outbox.backlog() == 0
        assert tx.claim_event("e1", "1234", "cust-1", 300.0) is True


def test_a_savepoint_rolls_back_one_events_writes_and_keeps_the_rest(store: StateStore) -> None:
    with store.transaction() as tx:
        tx.claim_event("kept", "1234", "cust-1", 1.0)
        with pytest.raises(_Boom), tx.savepoint():
            tx.claim_event("dropped", "1234", "cust-1", 1.0)
            raise _Boom
        tx.claim_event("after", "1234", "cust-1", 1.0)
    with store.transaction() as tx:
        assert [tx.claim_event(e, "1234", "cust-1", 2.0) for e in ("kept", "dropped", "after")] == [False, True, False]


def _race(url: str, claim: Callable[[StateStore], list[str]], total: int) -> tuple[list[str], list[str]]:
    """Two stores (two consumers) claiming from the same PostgreSQL schema at once until all is claimed.

    They claim in rounds, both at the same moment in each: left to run free, one thread on a loaded machine
    could claim everything before the other started, and the race would not have been run. Each claim takes
    at most a handful, so there are enough rounds for one consumer alone to claim everything."""
    stores = [StateStore(url), StateStore(url)]
    claimed: list[list[str]] = [[], []]
    rounds = threading.Barrier(2, timeout=30)

    def claim_all(index: int) -> None:
        for _ in range(total):
            rounds.wait()
            claimed[index].extend(claim(stores[index]))
            rounds.wait()  # both claims of the round ended: both threads see the same sum
            if len(claimed[0]) + len(claimed[1]) >= total:
                return

    threads = [threading.Thread(target=claim_all, args=(i,)) for i in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for opened in stores:
            opened.close()
    return claimed[0], claimed[1]


@pytest.mark.integration
def test_two_postgres_consumers_claiming_at_once_never_get_the_same_group(postgres_url: str) -> None:
    groups = 300
    seed = StateStore(postgres_url)
    try:
        with seed.transaction() as tx:
            for i in range(groups):
                tx.hold(_pending(f"e{i}"), f"order-{i}", "shipping", "cust-1", 0.0, float(i % 10))
    finally:
        seed.close()
    first, second = _race(postgres_url, lambda s: [g.order_id for g in _claim(s, now=100.0, limit=7)], groups)
    assert not set(first) & set(second), "the same group was claimed by both consumers"
    assert len(first) + len(second) == groups
    assert set(first) | set(second) == {f"order-{i}" for i in range(groups)}
    assert first and second, "one consumer got every group: the test did not exercise concurrency"


@pytest.mark.integration
def test_two_postgres_dispatchers_claiming_the_outbox_at_once_never_get_the_same_entry(postgres_url: str) -> None:
    entries = 300
    seed = StateStore(postgres_url)
    try:
        with seed.transaction() as tx:
            for i in range(entries):
                tx.outbox.add_ready(_entry(f"n{i}"), [_pending(f"e{i}")], float(i % 10))
    finally:
        seed.close()

    def claim(store: StateStore) -> list[str]:
        return _take(store, now=100.0, owner=str(id(store)), limit=7)

    first, second = _race(postgres_url, claim, entries)
    assert not set(first) & set(second), "the same outbox entry was claimed by both consumers"
    assert len(first) + len(second) == entries
    assert first and second, "one consumer got every entry: the test did not exercise concurrency"


def test_consumers_starting_together_on_an_empty_postgresql_schema_both_get_a_store(postgres_url: str) -> None:
    """Found by the scaling benchmark: CREATE TABLE IF NOT EXISTS races (UniqueViolation) without a lock."""

    errors: list[BaseException] = []
    stores: list[StateStore] = []
    barrier = threading.Barrier(4)

    def open_one() -> None:
        barrier.wait()
        try:
            stores.append(StateStore(postgres_url))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for store in stores:
        store.close()
    assert errors == [] and len(stores) == 4


@pytest.mark.integration
def test_an_event_joining_a_window_that_another_consumer_closes_is_never_left_without_one(postgres_url: str) -> None:
    """Consumer A adds an event to a window while consumer B closes it: B sees the event, or A opens a new window."""
    seed, joiner, closer = StateStore(postgres_url), StateStore(postgres_url), StateStore(postgres_url)
    try:
        _hold(seed, "e1", "1234", due_at=100.0)
        joined = threading.Event()

        def join() -> None:
            with joiner.transaction() as tx:
                tx.hold(_pending("e2"), "1234", "shipping", "cust-1", 1.0, 300.0)
                joined.set()
                time.sleep(0.5)  # B tries to close the window meanwhile

        thread = threading.Thread(target=join)
        thread.start()
        assert joined.wait(10)
        with closer.transaction() as tx:
            groups = tx.claim_due_groups(150.0, 210.0, 10)
            seen = [p.event_id for g in groups for p in tx.group_events(g.order_id, g.group)]
            for g in groups:
                tx.finish_group(g.order_id, g.group, seen)
        thread.join(10)
        with seed.transaction() as tx:
            left = [p.event_id for p in tx.group_events("1234", "shipping")]
            windows = tx.pending_count()
        assert "e2" in seen or (left == ["e2"] and windows == 1), (seen, left, windows)
    finally:
        for opened in (seed, joiner, closer):
            opened.close()


def test_drop_pending_returns_only_what_it_deleted_and_closes_a_window_it_empties(store: StateStore) -> None:
    _hold(store, "e1", "1234", due_at=100.0, group="stock", occurred_at=1.0)
    _hold(store, "e2", "1234", due_at=100.0, group="stock", occurred_at=2.0)
    _hold(store, "e3", "1234", due_at=100.0, group="shipping", occurred_at=3.0)
    _hold(store, "e9", "5678", due_at=100.0, group="stock")
    with store.transaction() as tx:
        pending = [(group, p.event_id) for group, p in tx.pending_of_order("1234")]
        first = tx.drop_pending("1234", "stock", ["e1", "never-held"])
        still_open = tx.has_pending_group("1234", "stock")
    assert pending == [("stock", "e1"), ("stock", "e2"), ("shipping", "e3")]
    assert first == ["e1"] and still_open
    with store.transaction() as tx:
        second = tx.drop_pending("1234", "stock", ["e1", "e2"])  # e1 is already gone: not reported again
        assert not tx.has_pending_group("1234", "stock")  # left empty: closed, not a window with nothing in it
        assert tx.has_pending_group("1234", "shipping") and tx.has_pending_group("5678", "stock")
        assert [(group, p.event_id) for group, p in tx.pending_of_order("1234")] == [("shipping", "e3")]
        assert tx.pending_count() == 2
    assert second == ["e2"]


@pytest.mark.integration
@pytest.mark.parametrize("first", ["dropper", "closer"])
@pytest.mark.parametrize("drops", [("e1",), ("e1", "e2")], ids=["part", "all"])
def test_pending_news_dropped_while_another_consumer_closes_its_window_is_either_dropped_or_sent(
        postgres_url: str, first: str, drops: tuple[str, ...]) -> None:
    """Consumer A drops news that a cancellation made pointless (the decider's pending_of_order + drop_pending)
    while consumer B closes the same window (the dispatcher's claim_due_groups + group_events + finish_group).
    Whichever starts first and holds its transaction open, no event is both reported dropped by A and in what
    B closed (an e-mail for news the customer was told was moot, or a superseded record for a sent one), and
    none is lost: every event is dropped, closed or still waiting in an open window."""
    seed, dropper, closer = StateStore(postgres_url), StateStore(postgres_url), StateStore(postgres_url)
    dropped: list[str] = []
    closed: list[str] = []
    waited: dict[str, float] = {}

    def drop(hold_open: threading.Event | None) -> None:
        started = time.monotonic()
        with dropper.transaction() as tx:
            pending = tx.pending_of_order("1234")
            waited["dropper"] = time.monotonic() - started
            for group, p in pending:
                if p.event_id in drops:
                    dropped.extend(tx.drop_pending("1234", group, [p.event_id]))
            if hold_open is not None:
                hold_open.set()
                time.sleep(0.5)  # B tries to close the window meanwhile

    def close(hold_open: threading.Event | None) -> None:
        started = time.monotonic()
        with closer.transaction() as tx:
            groups = tx.claim_due_groups(150.0, 210.0, 10)
            waited["closer"] = time.monotonic() - started
            for g in groups:
                seen = [p.event_id for p in tx.group_events(g.order_id, g.group)]
                closed.extend(seen)
                if hold_open is not None:
                    hold_open.set()
                    time.sleep(0.5)  # A tries to drop the news meanwhile
                tx.finish_group(g.order_id, g.group, seen)
            if hold_open is not None:
                hold_open.set()

    try:
        _hold(seed, "e1", "1234", due_at=100.0, occurred_at=1.0)
        _hold(seed, "e2", "1234", due_at=100.0, occurred_at=2.0)
        leader, follower = (drop, close) if first == "dropper" else (close, drop)
        holding = threading.Event()
        thread = threading.Thread(target=leader, args=(holding,))
        thread.start()
        assert holding.wait(10)
        follower(None)
        thread.join(10)
        with seed.transaction() as tx:
            left = [p.event_id for p in tx.group_events("1234", "shipping")]
            windows = tx.pending_count()
    finally:
        for opened in (seed, dropper, closer):
            opened.close()
    assert not set(dropped) & set(closed), f"dropped {dropped} yet closed {closed}"
    assert sorted(dropped + closed + left) == ["e1", "e2"], (dropped, closed, left)
    assert windows == (1 if left else 0), (left, windows)
    follower_name = "closer" if first == "dropper" else "dropper"
    assert waited[follower_name] >= 0.3, f"the {follower_name} did not wait for the {first}: no race exercised"


def test_sent_lists_the_sent_entries_with_message_id_order_and_template_oldest_first(store: StateStore) -> None:
    for notification_id, order_id in (("n1", "o-1"), ("n2", "o-2"), ("n3", "o-1")):
        _queue(store, notification_id, 100.0, order_id=order_id)
    _take(store, 100.0)
    with store.transaction() as tx:
        for notification_id in ("n1", "n2", "n3"):
            tx.outbox.store_rendered(notification_id, _mail(notification_id), "me")
        tx.outbox.mark_sent("n3", 110.0)
        tx.outbox.mark_sent("n1", 120.0)  # n2 is still being sent: not listed
        sent = tx.outbox.sent()
    assert sent == [SentMail("<n3@ordernotify>", "o-1", "shipped"), SentMail("<n1@ordernotify>", "o-1", "shipped")]
