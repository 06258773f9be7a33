"""The state store's primitives behave the same on SQLite and PostgreSQL, roll back as a whole, and never hand one
due group to two consumers at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.state.store import DueGroup, OutboxEntry, PendingEvent, StateStore


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
           data: bytes = b"Subject: hi\r\n\r\nbody") -> OutboxEntry:
    return OutboxEntry(
        notification_id=notification_id, order_id="1234", customer_id=customer_id, template="shipped",
        informational=informational, message_id=f"<{notification_id}@ordernotify>", event_ids=("e1", "e2"),
        subject="Your order has shipped", locale="en", mail_from="shop@example.org", rcpt_to="ada@example.org",
        data=data,
    )


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
        assert tx.claim_event("e1", "1234", 100.0) is True
    with store.transaction() as tx:
        assert tx.claim_event("e1", "1234", 200.0) is False
        assert tx.claim_event("e2", "1234", 200.0) is True


def test_facts_are_added_once_and_read_per_order(store: StateStore) -> None:
    with store.transaction() as tx:
        assert tx.facts("1234") == frozenset()
        tx.add_facts("1234", ["placed", "shipped:SHIP-1"])
    with store.transaction() as tx:
        tx.add_facts("1234", ["shipped:SHIP-1", "delivered:SHIP-1"])
        tx.add_facts("5678", ["placed"])
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


def test_add_outbox_records_a_notification_once(store: StateStore) -> None:
    with store.transaction() as tx:
        assert tx.add_outbox(_entry("n1"), now=100.0, lease_until=200.0) is True
    with store.transaction() as tx:
        assert tx.add_outbox(_entry("n1", data=b"other bytes"), now=150.0, lease_until=250.0) is False
    with store.transaction() as tx:
        assert [e.data for e in tx.claim_unsent(300.0, 400.0, 10, ignore_leases=False)] == [_entry("n1").data]


def test_claim_unsent_returns_sending_entries_with_the_exact_bytes_and_respects_leases(store: StateStore) -> None:
    raw = b"Subject: =?utf-8?q?M=C3=BCller?=\r\n\r\n\x00\xff\xfe binary \r\n.\r\n"
    with store.transaction() as tx:
        tx.add_outbox(_entry("n1", data=raw), now=100.0, lease_until=200.0)
        tx.add_outbox(_entry("n2"), now=110.0, lease_until=200.0)
        tx.mark_sent("n2", 120.0)
    with store.transaction() as tx:
        assert tx.claim_unsent(150.0, 250.0, 10, ignore_leases=False) == []  # the sender's lease still holds
    with store.transaction() as tx:
        assert tx.claim_unsent(201.0, 261.0, 10, ignore_leases=False) == [_entry("n1", data=raw)]
    with store.transaction() as tx:
        assert tx.claim_unsent(210.0, 270.0, 10, ignore_leases=False) == []  # now leased to us until 261
    with store.transaction() as tx:  # at start-up, every 'sending' entry is ours whatever its lease
        assert tx.claim_unsent(210.0, 270.0, 10, ignore_leases=True) == [_entry("n1", data=raw)]


def test_claim_unsent_honours_the_limit_oldest_first(store: StateStore) -> None:
    with store.transaction() as tx:
        for i, created in enumerate((300.0, 100.0, 200.0)):
            tx.add_outbox(_entry(f"n{i}"), now=created, lease_until=created)
    with store.transaction() as tx:
        assert [e.notification_id for e in tx.claim_unsent(400.0, 500.0, 2, ignore_leases=False)] == ["n1", "n2"]


def test_mark_sent_records_the_outcome_and_drops_the_message_bytes(store: StateStore) -> None:
    with store.transaction() as tx:
        tx.add_outbox(_entry("n1"), now=100.0, lease_until=200.0)
        tx.mark_sent("n1", 105.0)
    assert _outbox_row(store, "n1") == ("sent", None, 105.0)
    with store.transaction() as tx:
        assert tx.claim_unsent(300.0, 400.0, 10, ignore_leases=True) == []


def test_mark_failed_and_release_events_let_a_replay_claim_the_events_again(store: StateStore) -> None:
    with store.transaction() as tx:
        assert tx.claim_event("e1", "1234", 100.0)
        tx.add_facts("1234", ["placed", "shipped:SHIP-1"])
        tx.add_outbox(_entry("n1"), now=100.0, lease_until=200.0)
    with store.transaction() as tx:
        tx.mark_failed("n1", 110.0)
        tx.release_events("1234", ["e1"], ["shipped:SHIP-1"])
    assert _outbox_row(store, "n1")[0] == "failed"
    with store.transaction() as tx:
        assert tx.claim_unsent(300.0, 400.0, 10, ignore_leases=True) == []  # never retried from the outbox
        assert tx.facts("1234") == frozenset({"placed"})
        assert tx.claim_event("e1", "1234", 300.0) is True


def test_informational_sent_since_counts_only_informational_not_failed_entries_after_the_time(
    store: StateStore,
) -> None:
    with store.transaction() as tx:
        tx.add_outbox(_entry("old"), now=50.0, lease_until=50.0)
        tx.add_outbox(_entry("sent"), now=100.0, lease_until=100.0)
        tx.mark_sent("sent", 101.0)
        tx.add_outbox(_entry("failed"), now=110.0, lease_until=110.0)
        tx.mark_failed("failed", 111.0)
        tx.add_outbox(_entry("confirmation", informational=False), now=120.0, lease_until=120.0)
        tx.add_outbox(_entry("other customer", customer_id="cust-2"), now=130.0, lease_until=130.0)
        tx.add_outbox(_entry("sending"), now=140.0, lease_until=140.0)
    with store.transaction() as tx:
        assert sorted(tx.informational_sent_since("cust-1", 60.0)) == [100.0, 140.0]
        assert tx.informational_sent_since("cust-1", 140.0) == []  # strictly after
        assert tx.informational_sent_since("cust-2", 0.0) == [130.0]


# -- transactions -----------------------------------------------------------------------------


class _Boom(Exception):
    pass


def test_a_transaction_that_raises_is_rolled_back_entirely(store: StateStore) -> None:
    with pytest.raises(_Boom), store.transaction() as tx:
        assert tx.claim_event("e1", "1234", 100.0)
        tx.add_facts("1234", ["placed"])
        tx.set_preferences("cust-1", informational=False, updated_at=100.0)
        tx.hold(_pending("e1"), "1234", "shipping", "cust-1", 90.0, 150.0)
        tx.add_outbox(_entry("n1"), now=100.0, lease_until=200.0)
        raise _Boom
    with store.transaction() as tx:  # nothing of it is visible, and the store still works
        assert tx.facts("1234") == frozenset()
        assert tx.opted_out("cust-1") is False
        assert tx.pending_count() == 0
        assert tx.claim_unsent(300.0, 400.0, 10, ignore_leases=True) == []
        assert tx.claim_event("e1", "1234", 300.0) is True


def _race(url: str, claim: Callable[[StateStore], list[str]], total: int) -> tuple[list[str], list[str]]:
    """Two stores (two consumers) claiming from the same PostgreSQL schema at once until all is claimed."""
    stores = [StateStore(url), StateStore(url)]
    claimed: list[list[str]] = [[], []]
    start = threading.Barrier(2)
    deadline = time.monotonic() + 30

    def claim_all(index: int) -> None:
        start.wait()
        while time.monotonic() < deadline and len(claimed[0]) + len(claimed[1]) < total:
            claimed[index].extend(claim(stores[index]))

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
def test_two_postgres_consumers_recovering_the_outbox_at_once_never_get_the_same_entry(postgres_url: str) -> None:
    entries = 300
    seed = StateStore(postgres_url)
    try:
        with seed.transaction() as tx:
            for i in range(entries):
                tx.add_outbox(_entry(f"n{i}"), now=float(i % 10), lease_until=10.0)
    finally:
        seed.close()

    def claim(store: StateStore) -> list[str]:
        with store.transaction() as tx:
            return [e.notification_id for e in tx.claim_unsent(100.0, 200.0, 7, ignore_leases=False)]

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
