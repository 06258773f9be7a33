"""Fault 6: the state store (PostgreSQL) goes away for a while. The consumer pauses and resumes; no
e-mail is sent without its record, none is lost, none doubled."""

from __future__ import annotations

import dataclasses
import time

import psycopg
import pytest

from devstack.smtp_capture import SmtpCapture
from ordernotify.config import Settings
from tests.consumer_runner import ConsumerRunner
from tests.integration.fault_support import FaultResult, order_ids, produce_orders, record, wait_for_orders
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_S = 8.0


def test_the_consumer_pauses_while_the_state_store_is_away_and_resumes(
    settings: Settings, smtp_server: SmtpCapture, postgres_url: str
) -> None:
    with TcpProxy(5432) as proxy:
        settings = dataclasses.replace(
            settings, state_url=postgres_url.replace("127.0.0.1/", f"127.0.0.1:{proxy.port}/"), max_poll_records=50
        )
        smtp_server.delay_s = 0.01
        ids = order_ids("FSTORE", 300)
        produce_orders(settings, ids)
        with ConsumerRunner(settings) as runner:
            deadline = time.monotonic() + 60
            while len(smtp_server.messages) < 60:  # a consumer that died fails here, not at the suite's timeout
                assert time.monotonic() < deadline, f"60 e-mails not sent within 60 s ({len(smtp_server.messages)})"
                time.sleep(0.05)
            proxy.cut()
            at_cut = len(smtp_server.messages)
            time.sleep(OUTAGE_S)
            during = len(smtp_server.messages) - at_cut
            ready_during = runner.running.health.report()
            proxy.restore()
            restored_at = time.monotonic()
            tally = wait_for_orders(lambda: smtp_server.messages, ids, timeout_s=90)
            recovery = time.monotonic() - restored_at
            runner.wait_handled(len(ids))
    record(FaultResult(f"6 state store unreachable {OUTAGE_S:.0f} s (PostgreSQL)", len(ids), tally.expected,
                       tally.received, tally.lost, tally.duplicated, 0, round(recovery, 1)))
    # Only e-mails decided (intent recorded) before the cut may still go out: at most one per connection.
    assert during <= settings.smtp_connections
    assert not ready_during.ready and "state_store" in ready_during.failing
    assert tally.lost == 0 and tally.duplicated == 0
    with psycopg.connect(postgres_url) as conn:  # every e-mail that went out has its record
        statuses = dict(conn.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())
    assert statuses == {"sent": len(ids)}
