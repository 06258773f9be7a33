"""The state store's copy of the suppression list, on SQLite and PostgreSQL, and a version-2 store opened by
this version (the table is added, nothing else changes)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumers.state.outbox import Failure, ReadyEntry, RenderedMail, Status
from consumers.state.schema import VERSION
from consumers.state.store import StateStore
from schemas.suppressions import SuppressionReason, SuppressionRecord

T0 = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
DIGEST = "d" * 64


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    url = f"sqlite:///{tmp_path / 'state.db'}" if request.param == "sqlite" else \
        request.getfixturevalue("postgres_url")
    opened = StateStore(url)
    try:
        yield opened
    finally:
        opened.close()


def _record(reason: SuppressionReason = SuppressionReason.HARD_BOUNCE, last: float = 0, count: int = 1,
            until: datetime | None = None, lifted: datetime | None = None) -> SuppressionRecord:
    return SuppressionRecord(DIGEST, reason, T0, T0 + timedelta(days=last), count, until, detail="5.1.1",
                             lifted_at=lifted, lifted_by="ops" if lifted else None)


def test_the_newest_record_per_address_is_kept_whatever_the_arrival_order(store: StateStore) -> None:
    newer = _record(last=2, count=2)
    with store.transaction() as tx:
        assert tx.suppression(DIGEST) is None
        tx.set_suppression(newer)
        tx.set_suppression(_record(last=1))  # older, arriving late: ignored
        found = tx.suppression(DIGEST)
    assert found is not None
    assert (found.reason, found.first_at, found.last_at, found.count, found.suppressed_until) == (
        SuppressionReason.HARD_BOUNCE, T0, T0 + timedelta(days=2), 2, None)


def test_a_lift_and_an_expiry_are_kept_and_a_tombstone_forgets_the_address(store: StateStore) -> None:
    until = T0 + timedelta(days=7)
    with store.transaction() as tx:
        tx.set_suppression(_record(SuppressionReason.SOFT_BOUNCE, count=3, until=until))
        soft = tx.suppression(DIGEST)
        tx.set_suppression(_record(SuppressionReason.SOFT_BOUNCE, count=3, until=until, lifted=T0 + timedelta(1)))
        lifted = tx.suppression(DIGEST)
        tx.forget_suppression(DIGEST)
        gone = tx.suppression(DIGEST)
    assert soft is not None and soft.suppressed_until == until and soft.in_force(T0)
    assert lifted is not None and lifted.lifted_at == T0 + timedelta(days=1) and not lifted.in_force(T0)
    assert gone is None


def test_an_entry_not_sent_is_done_with_its_reason_and_its_bytes_and_address_are_dropped(store: StateStore) -> None:
    with store.transaction() as tx:
        tx.outbox.add_ready(ReadyEntry("n1", "O-1", "C-1", "shipped", True, ("e1",)), [], 1.0)
        (claimed,) = tx.outbox.claim(2.0, "me", 30.0, 10)
        assert tx.outbox.store_rendered("n1", RenderedMail("<m>", "s", "en", "f@x", "ada@example.org", b"x"), "me")
        assert not tx.outbox.mark_not_sent("n1", Failure("address_suppressed", "hard bounce on 2026-12-02"), 3.0,
                                           "someone else")
        assert tx.outbox.mark_not_sent("n1", Failure("address_suppressed", "hard bounce on 2026-12-02"), 3.0, "me")
        row = tx._q("SELECT status, data, rcpt_to, failure_reason, failure_detail FROM outbox").fetchone()
        assert tx.outbox.backlog() == 0
        assert tx.outbox.claim(100.0, "me", 130.0, 10) == []
    assert tuple(row) == (Status.NOT_SENT, None, None, "address_suppressed", "hard bounce on 2026-12-02")


def test_a_version_2_store_gets_the_table_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    StateStore(f"sqlite:///{path}").close()
    old = sqlite3.connect(path)
    old.execute("DROP TABLE suppressions")
    old.execute("UPDATE store_meta SET version = 2")
    old.execute("INSERT INTO preferences VALUES ('C-1', 0, 1.0)")
    old.commit()
    old.close()
    store = StateStore(f"sqlite:///{path}")
    try:
        with store.transaction() as tx:
            assert tx.opted_out("C-1")
            tx.set_suppression(_record())
            assert tx.suppression(DIGEST) is not None
            assert tx._q("SELECT version FROM store_meta").fetchall() == [(VERSION,)]
    finally:
        store.close()
