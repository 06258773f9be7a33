"""The dispatcher's last look: an address on the suppression list gets no e-mail, and the log says why.

Decide, then deliver, over a real SQLite store with the fake clock of test_stages.py's Harness; the
suppression is put into the store as the suppressions reader would."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from consumers.deliver.verp import address_digest
from consumers.outcomes import Queued
from consumers.state.store import StateStore
from schemas.suppressions import SuppressionReason, SuppressionRecord
from tests import factories
from tests.consumers.test_stages import T0, Harness

ADDRESS = "ada@example.org"  # the factories' customer
SINCE = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(f"sqlite:///{tmp_path / 'state.db'}")


def _suppress(store: StateStore, reason: SuppressionReason, until: datetime | None = None,
              lifted: datetime | None = None) -> None:
    record = SuppressionRecord(address_digest(ADDRESS.upper()), reason, SINCE, SINCE, 1, until, lifted_at=lifted)
    with store.transaction() as tx:
        tx.set_suppression(record)


def test_a_hard_bounced_address_gets_no_email_and_the_log_and_metrics_say_why(
        store: StateStore, caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(store)
    _suppress(store, SuppressionReason.HARD_BOUNCE)
    placed = h.event(factories.placed_event, order_id="N-S1")
    assert h.consume(placed) == Queued("order_placed")
    with caplog.at_level(logging.INFO, logger="consumers.deliver.dispatcher"):
        assert h.deliver() == 0
    assert h.sender.sent == []
    assert h.status() == [("not_sent", 0)]
    (record,) = h.log.records
    assert (record["outcome"], record["reason"], record["detail"], record["template"]) == (
        "NOT_SENT", "address_suppressed", "hard bounce on 2026-01-10", "order_placed")
    assert record["event_ids"] == [placed.event_id]
    (line,) = [r.getMessage() for r in caplog.records if "not sent" in r.getMessage()]
    assert "address suppressed (hard bounce on 2026-01-10)" in line and ADDRESS not in line
    assert h.dispatcher.not_sent_by_reason["address_suppressed"] == 1
    assert h.deliver() == 0 and h.sender.sent == []  # done: not claimed again


def test_a_complaint_stops_shipped_news_but_not_the_order_confirmation(store: StateStore) -> None:
    h = Harness(store)
    _suppress(store, SuppressionReason.COMPLAINT)
    h.consume(h.event(factories.placed_event, order_id="N-S2"))
    h.consume(h.event(factories.shipped_event, order_id="N-S3"))
    h.at(3600)  # past the coalescing window of the shipped news
    assert h.sender.subjects() and len(h.sender.sent) == 1
    assert sorted((r["outcome"], r.get("template")) for r in h.log.records) == [
        ("NOT_SENT", "shipped"), ("SENT", "order_placed")]


def test_a_complaint_stops_must_send_mail_too_when_the_setting_says_so(store: StateStore) -> None:
    h = Harness(store, complaint_blocks_must_send=True)
    _suppress(store, SuppressionReason.COMPLAINT)
    h.consume(h.event(factories.placed_event, order_id="N-S4"))
    assert h.deliver() == 0 and h.sender.sent == []


def test_an_expired_or_lifted_suppression_lets_the_email_go(store: StateStore) -> None:
    h = Harness(store)
    now = datetime.fromtimestamp(T0, UTC)
    _suppress(store, SuppressionReason.SOFT_BOUNCE, until=now - timedelta(minutes=1))
    h.consume(h.event(factories.placed_event, order_id="N-S5"))
    assert h.deliver() == 1
    _suppress(store, SuppressionReason.MANUAL, lifted=SINCE + timedelta(days=1))
    h.consume(h.event(factories.placed_event, order_id="N-S6"))
    assert h.deliver() == 1
