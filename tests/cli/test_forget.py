"""``ordernotify forget``: a customer's rows leave the state store, on SQLite and PostgreSQL; others stay; their
suppressions leave the topic (a fake here; tests/integration/test_suppressions.py on the real broker)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli.exit_codes import ExitCode
from cli.main import main
from consumers.dead_letters import SourceRecord
from consumers.decide.decider import Decider
from consumers.deliver.verp import address_digest
from consumers.state.store import StateStore
from ordernotify.config import Settings
from ordernotify.errors import DependencyUnreachable, OrderNotifyError
from schemas.codec import EventCodec
from schemas.events import OrderEvent
from schemas.suppressions import SuppressionReason, SuppressionRecord
from tests import factories
from tests.consumers.test_stages import RecordingLog


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def _decide(url: str, *events: OrderEvent) -> None:
    records = [SourceRecord("orders.events", 0, n, e.order_id.encode(), EventCodec().encode(e), ())
               for n, e in enumerate(events)]
    store = StateStore(url)
    try:
        Decider(Settings(coalesce_window_s=60), store, RecordingLog()).decide(records)  # type: ignore[arg-type]
    finally:
        store.close()


def test_forget_erases_one_customers_rows_and_says_what_went(state_url: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    ada = factories.make_customer(customer_id="C-ADA", email="ada@example.org")
    bob = factories.make_customer(customer_id="C-BOB", email="bob@example.org")
    _decide(state_url, factories.placed_event(order_id="O-ADA", customer=ada),
            factories.shipped_event(order_id="O-ADA", customer=ada),
            factories.placed_event(order_id="O-BOB", customer=bob))
    assert main(["forget", "--customer", "C-ADA", "--state-url", state_url, "--json"]) == 0
    removed = json.loads(capsys.readouterr().out)["removed"]
    assert removed["processed_events"] == 2 and removed["outbox"] == 1 and removed["pending_groups"] == 1
    store = StateStore(state_url)
    try:
        with store.transaction() as tx:
            rows = tx._q("SELECT customer_id FROM outbox").fetchall()
            assert [r[0] for r in rows] == ["C-BOB"]
            assert tx.facts("O-ADA") == frozenset() and tx.facts("O-BOB") == frozenset({"placed"})
            assert tx.pending_count() == 0
            assert b"ada@example.org" not in b"".join(
                bytes(r[0]) for r in tx._q("SELECT event FROM outbox_events").fetchall())
    finally:
        store.close()
    assert main(["forget", "--customer", "C-ADA", "--state-url", state_url]) == 0
    assert "nothing stored about customer C-ADA" in capsys.readouterr().out


# -- the suppression list: keyed by a digest of the address, still the customer's personal data ---------------

ADA = "ada@example.org"
BOB = "bob@example.org"
OLD = "ada.old@example.org"  # an address the store no longer knows


def _suppression(address: str, customer_id: str | None = None) -> SuppressionRecord:
    when = datetime(2026, 12, 2, tzinfo=UTC)
    return SuppressionRecord(address_digest(address), SuppressionReason.HARD_BOUNCE, when, when, 1, None,
                             customer_id=customer_id)


class FakeList:
    """The topic as a SuppressionList sees it: records by digest, and the tombstones published."""

    records_by_digest: dict[str, SuppressionRecord] = {}
    tombstoned: list[str] = []
    fail: OrderNotifyError | None = None
    loads = 0

    def __init__(self, settings: Settings, producer: object | None = None) -> None:
        pass

    def load(self) -> None:
        FakeList.loads += 1
        if FakeList.fail is not None:
            raise FakeList.fail

    def records(self) -> list[SuppressionRecord]:
        return list(FakeList.records_by_digest.values())

    def of_customer(self, customer_id: str) -> list[str]:
        return sorted(d for d, r in FakeList.records_by_digest.items() if r.customer_id == customer_id)

    def forget(self, digest: str) -> None:
        FakeList.tombstoned.append(digest)
        FakeList.records_by_digest.pop(digest)

    def close(self) -> None:
        pass


@pytest.fixture
def topic(monkeypatch: pytest.MonkeyPatch) -> type[FakeList]:
    monkeypatch.setattr(FakeList, "records_by_digest", {})
    monkeypatch.setattr(FakeList, "tombstoned", [])
    monkeypatch.setattr(FakeList, "fail", None)
    monkeypatch.setattr(FakeList, "loads", 0)
    monkeypatch.setattr("cli.forget.SuppressionList", FakeList)
    return FakeList


def _store_suppressions(url: str, *records: SuppressionRecord) -> None:
    store = StateStore(url)
    try:
        with store.transaction() as tx:
            for record in records:
                tx.set_suppression(record)
    finally:
        store.close()


def _stored_suppressions(url: str) -> set[str]:
    store = StateStore(url)
    try:
        with store.transaction() as tx:
            return {str(r[0]) for r in tx._q("SELECT address_digest FROM suppressions").fetchall()}
    finally:
        store.close()


def test_the_store_maps_a_customer_to_the_addresses_of_their_open_windows_and_emails(state_url: str) -> None:
    ada = factories.make_customer(customer_id="C-ADA", email=ADA)
    _decide(state_url, factories.placed_event(order_id="O-ADA", customer=ada),  # an outbox entry
            factories.shipped_event(order_id="O-ADA2", customer=ada),  # an open window
            factories.placed_event(order_id="O-BOB", customer=factories.make_customer(customer_id="C-BOB",
                                                                                    email=BOB)))
    store = StateStore(state_url)
    try:
        with store.transaction() as tx:
            tx.outbox.mark_sent(tx._q("SELECT notification_id FROM outbox WHERE customer_id = 'C-ADA'")
                                .fetchone()[0], 1.0)
            assert tx.customer_addresses("C-ADA") == {ADA}  # from the open window; the sent e-mail keeps none
            assert tx.customer_addresses("C-BOB") == {BOB}
            assert tx.customer_addresses("C-NOBODY") == set()
    finally:
        store.close()


def test_forget_tombstones_the_customers_suppressions_and_drops_the_stores_copy(
        state_url: str, topic: type[FakeList], capsys: pytest.CaptureFixture[str]) -> None:
    ada = factories.make_customer(customer_id="C-ADA", email=ADA)
    _decide(state_url, factories.placed_event(order_id="O-ADA", customer=ada),
            factories.placed_event(order_id="O-BOB", customer=factories.make_customer(customer_id="C-BOB",
                                                                                    email=BOB)))
    _store_suppressions(state_url, _suppression(ADA), _suppression(BOB))
    topic.records_by_digest = {address_digest(a): _suppression(a, c)
                               for a, c in ((ADA, None), (BOB, "C-BOB"), (OLD, "C-ADA"))}
    assert main(["forget", "--customer", "C-ADA", "--state-url", state_url]) == 0
    out = capsys.readouterr().out
    # the address the store knew, and the one whose record names the customer
    assert sorted(topic.tombstoned) == sorted([address_digest(ADA), address_digest(OLD)])
    assert _stored_suppressions(state_url) == {address_digest(BOB)}
    assert "suppressions: 1" in out and "suppressions topic: 2 tombstoned" in out
    assert address_digest(ADA)[:12] in out and address_digest(ADA) not in out
    assert "@" not in out


def test_forget_erases_the_suppression_of_an_address_given_with_email(
        state_url: str, topic: type[FakeList], capsys: pytest.CaptureFixture[str]) -> None:
    topic.records_by_digest = {address_digest(OLD): _suppression(OLD)}
    assert main(["forget", "--customer", "C-ADA", "--email", f" {OLD.upper()} ", "--state-url", state_url,
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert topic.tombstoned == [address_digest(OLD)]
    assert report["suppressions_topic"] == {"tombstoned": [address_digest(OLD)[:12]], "left": [], "complete": True}


def test_forget_with_no_suppression_to_look_for_needs_no_broker(state_url: str, topic: type[FakeList]) -> None:
    ada = factories.make_customer(customer_id="C-ADA", email=ADA)
    _decide(state_url, factories.placed_event(order_id="O-ADA", customer=ada))
    topic.fail = OrderNotifyError("the broker must not be asked")
    assert main(["forget", "--customer", "C-ADA", "--state-url", state_url]) == 0
    assert topic.loads == 0


def test_a_broker_that_cannot_be_reached_leaves_the_topic_part_said_in_one_line_and_exit_3(
        state_url: str, topic: type[FakeList], capsys: pytest.CaptureFixture[str]) -> None:
    ada = factories.make_customer(customer_id="C-ADA", email=ADA)
    _decide(state_url, factories.placed_event(order_id="O-ADA", customer=ada))
    _store_suppressions(state_url, _suppression(ADA))
    topic.fail = DependencyUnreachable("the Kafka broker", "127.0.0.1:9", 2.0, "--bootstrap-servers")
    assert main(["forget", "--customer", "C-ADA", "--state-url", state_url]) == ExitCode.UNREACHABLE
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    short = address_digest(ADA)[:12]
    assert line.startswith("ordernotify: cannot reach the Kafka broker at 127.0.0.1:9")
    assert "not the suppressions topic's: 1 digest(s) of this customer still to erase" in line
    assert line.endswith(f"ordernotify forget --customer C-ADA --digest {short}")
    assert "@" not in captured.err + captured.out
    assert _stored_suppressions(state_url) == set()  # the store's part is done
    assert "processed_events: 1" in captured.out

    # once the broker is back, the printed digest prefix finishes the erasure
    topic.fail = None
    topic.records_by_digest = {address_digest(ADA): _suppression(ADA)}
    assert main(["forget", "--customer", "C-ADA", "--digest", short, "--state-url", state_url]) == 0
    assert topic.tombstoned == [address_digest(ADA)]


def test_a_digest_prefix_shorter_than_the_lists_is_refused(state_url: str) -> None:
    assert main(["forget", "--customer", "C-ADA", "--digest", "abc", "--state-url", state_url]) == ExitCode.USAGE
