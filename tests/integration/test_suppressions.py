"""The suppression list over the real broker: a suppression on the topic stops the next e-mail to the address,
the history says why, the operators' command adds, shows, lists and lifts, and ``forget`` erases a customer's
suppressions from the topic and the consumers' copies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from consumers.decide.suppressions_reader import SuppressionsReader
from consumers.deliver.verp import VerpToken, address_digest
from consumers.health import ConsumerHealth
from consumers.state.store import StateStore, open_store
from devstack.smtp_capture import SmtpCapture
from feedback.classify import Feedback, FeedbackKind
from feedback.suppression_list import SuppressionList
from ordernotify.config import Settings
from schemas.codec import EventCodec
from schemas.events import OrderEvent
from tests import factories
from tests.consumer_runner import ConsumerRunner
from tests.kafka_reading import read_topic

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BOUNCED = "bounced.customer@example.net"


def _produce(settings: Settings, events: list[OrderEvent]) -> None:
    codec = EventCodec()
    producer = KafkaProducer(**settings.kafka_client_options(), acks="all")
    try:
        for future in [producer.send(settings.events_topic, key=e.order_id.encode(), value=codec.encode(e))
                       for e in events]:
            future.get(10)
    finally:
        producer.close()


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERNOTIFY_")}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args, "--bootstrap-servers", settings.bootstrap_servers,
         "--sent-topic", settings.sent_topic, "--suppressions-topic", settings.suppressions_topic],
        capture_output=True, text=True, timeout=90, cwd=ROOT, env=env,
    )


def test_a_hard_bounced_address_gets_no_email_and_the_history_says_why(
        settings: Settings, smtp_server: SmtpCapture) -> None:
    suppressions = SuppressionList(settings)
    try:
        hard = Feedback(FeedbackKind.HARD_BOUNCE, BOUNCED, "5.1.1", "550 5.1.1 user unknown", "dsn")
        token = VerpToken("ab" * 16, address_digest(BOUNCED)[:10])
        record = suppressions.apply(hard, token, "O-EARLIER", "C-B", datetime.now(UTC))
    finally:
        suppressions.close()
    assert record is not None
    since = f"{record.first_at:%Y-%m-%d}"
    bounced = factories.make_customer(customer_id="C-B", email=BOUNCED)
    fine = factories.make_customer(customer_id="C-F")
    with ConsumerRunner(settings) as runner:
        deadline = time.monotonic() + 15
        while runner.running.suppressions.applied < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert runner.running.suppressions.applied == 1
        assert runner.running.health.report().checks["suppressions"]
        _produce(settings, [factories.placed_event(order_id="O-B", customer=bounced),
                            factories.placed_event(order_id="O-F", customer=fine)])
        runner.wait_handled(2)
        runner.wait_idle()
        assert runner.not_sent_when(lambda counts: counts.get("address_suppressed") == 1).get("address_suppressed") == 1
        sample = runner.running.metrics.registry.get_sample_value
        assert sample("ordernotify_suppressed_sends_total", {"reason": "hard_bounce"}) == 1
    (sent,) = smtp_server.wait_for(1)
    assert BOUNCED not in str(sent)
    assert all(BOUNCED not in str(m) for m in smtp_server.messages)

    history = _cli(settings, "history", "--order", "O-B")
    assert history.returncode == 0, history.stderr
    assert f"not sent: address suppressed (hard bounce on {since})" in history.stdout
    assert BOUNCED not in history.stdout


def test_operators_add_show_list_and_lift_with_who_and_why(settings: Settings) -> None:
    added = _cli(settings, "suppressions", "add", BOUNCED, "--by", "ops-anna", "--why", "asked by phone")
    assert added.returncode == 0, added.stderr
    assert "manual" in added.stdout and "by ops-anna: asked by phone" in added.stdout
    assert BOUNCED not in added.stdout

    shown = _cli(settings, "suppressions", "show", BOUNCED.upper(), "--json")
    assert shown.returncode == 0, shown.stderr
    (only,) = json.loads(shown.stdout)["suppressions"]
    assert (only["address_digest"], only["reason"], only["in_force"]) == (address_digest(BOUNCED), "manual", True)

    lifted = _cli(settings, "suppressions", "remove", BOUNCED, "--by", "ops-ben", "--why", "address fixed")
    assert lifted.returncode == 0, lifted.stderr
    assert "lifted" in lifted.stdout and "ops-ben" in lifted.stdout

    assert _cli(settings, "suppressions", "list").stdout.strip() == "no address is suppressed"
    everything = _cli(settings, "suppressions", "list", "--all", "--json")
    (record,) = json.loads(everything.stdout)["suppressions"]
    assert (record["lifted_by"], record["lifted_why"], record["in_force"]) == ("ops-ben", "address fixed", False)

    again = _cli(settings, "suppressions", "remove", BOUNCED, "--by", "ops-ben", "--why", "twice")
    assert again.returncode == 1 and "nothing to lift" in again.stdout
    missing = _cli(settings, "suppressions", "add", BOUNCED)
    assert missing.returncode == 2 and "--by WHO and --why WHY" in missing.stderr


def _read_into(settings: Settings, url: str) -> set[str]:
    """A consumer's copy of the list: a reader from the topic's beginning into the store at ``url``, until it
    reached the end; the digests the copy then holds."""
    store = open_store(url)
    health = ConsumerHealth()
    reader = SuppressionsReader(settings, store, health).start()
    try:
        deadline = time.monotonic() + 20
        while not health.report().checks["suppressions"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert health.report().checks["suppressions"]
    finally:
        reader.stop()
    try:
        with store.transaction() as tx:
            return {str(r[0]) for r in tx._q("SELECT address_digest FROM suppressions").fetchall()}
    finally:
        store.close()


def _decide_into(url: str, event: OrderEvent) -> None:
    from consumers.dead_letters import SourceRecord
    from consumers.decide.decider import Decider
    from tests.consumers.test_stages import RecordingLog

    store = StateStore(url)
    try:
        record = SourceRecord("orders.events", 0, 0, event.order_id.encode(), EventCodec().encode(event), ())
        Decider(Settings(coalesce_window_s=60), store, RecordingLog()).decide([record])  # type: ignore[arg-type]
    finally:
        store.close()


def test_forget_tombstones_the_customers_suppressions_and_a_fresh_reader_no_longer_has_them(
        settings: Settings, tmp_path: Path) -> None:
    known, older, other = "ada@example.org", "ada.old@example.net", "bob@example.org"
    suppressions = SuppressionList(settings)
    try:
        now = datetime.now(UTC)
        suppressions.add(known, "ops-anna", "asked by phone", now)
        suppressions.add(other, "ops-anna", "asked by phone", now)
        # a bounce of an address the store never saw, attributed to the customer by its VERP token
        hard = Feedback(FeedbackKind.HARD_BOUNCE, older, "5.1.1", "550 5.1.1 user unknown", "dsn")
        suppressions.apply(hard, VerpToken("cd" * 16, address_digest(older)[:10]), "O-OLD", "C-ADA", now)
    finally:
        suppressions.close()
    assert settings.state_url is not None
    assert _read_into(settings, settings.state_url) == {address_digest(a) for a in (known, older, other)}
    _decide_into(settings.state_url, factories.placed_event(
        order_id="O-ADA", customer=factories.make_customer(customer_id="C-ADA", email=known)))

    forgot = _cli(settings, "forget", "--customer", "C-ADA", "--state-url", settings.state_url, "--json")
    assert forgot.returncode == 0, forgot.stderr
    assert "@" not in forgot.stdout + forgot.stderr
    report = json.loads(forgot.stdout)
    assert report["removed"]["suppressions"] == 2 and report["suppressions_topic"]["complete"] is True
    assert sorted(report["suppressions_topic"]["tombstoned"]) == sorted(
        address_digest(a)[:12] for a in (known, older))

    latest = {bytes(r.key).decode(): r.value for r in read_topic(settings, settings.suppressions_topic, 5)}
    assert latest[address_digest(known)] is None and latest[address_digest(older)] is None
    assert latest[address_digest(other)] is not None
    assert _read_into(settings, f"sqlite:///{tmp_path / 'fresh.db'}") == {address_digest(other)}
    shown = _cli(settings, "suppressions", "show", known)
    assert shown.returncode == 1 and "not on the suppression list" in shown.stdout
