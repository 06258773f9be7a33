"""``ordernotify forget``: a customer's rows leave the state store, on SQLite and PostgreSQL; others stay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from consumers.dead_letters import SourceRecord
from consumers.decide.decider import Decider
from consumers.state.store import StateStore
from ordernotify.config import Settings
from schemas.codec import EventCodec
from schemas.events import OrderEvent
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
