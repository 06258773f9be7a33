"""Fault 4: slow SMTP and rebalances. A batch slower than the poll deadline keeps the partitions; a
second consumer joining and the first leaving mid-stream lose and double nothing (PostgreSQL store,
two real processes)."""

from __future__ import annotations

import dataclasses
import signal
import time
from pathlib import Path

import pytest

from devstack.smtp_capture import SmtpCapture
from ordernotify.config import Settings
from tests.consumer_runner import ConsumerRunner
from tests.integration.fault_support import (
    ConsumerProcess,
    FaultResult,
    log_text,
    order_ids,
    produce_orders,
    record,
    wait_for_orders,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_batch_slower_than_the_poll_deadline_keeps_its_partitions(
    settings: Settings, smtp_server: SmtpCapture, caplog: pytest.LogCaptureFixture
) -> None:
    # 40 e-mails at 0.5 s each over 2 connections: a 10 s batch against a 6 s poll deadline.
    settings = dataclasses.replace(settings, max_poll_interval_s=6.0, max_poll_records=40, smtp_connections=2)
    smtp_server.delay_s = 0.5
    ids = order_ids("FSLOW", 40)
    produce_orders(settings, ids)
    started = time.monotonic()
    with ConsumerRunner(settings) as runner:
        tally = wait_for_orders(lambda: smtp_server.messages, ids, timeout_s=60)
        runner.wait_handled(40)
    assert tally.lost == 0 and tally.duplicated == 0
    assert time.monotonic() - started > 6.0  # the batch really outlasted the deadline
    revoked = [r for r in caplog.records if "partitions revoked" in r.getMessage()]
    assert len(revoked) <= 1  # only the final leave: no eviction mid-batch
    assert not [r for r in caplog.records if "CommitFailed" in r.getMessage()]
    smtp_server.delay_s = 0.0
    with ConsumerRunner(settings) as again:  # everything was committed: nothing comes back
        time.sleep(5)
        assert again.running.loop.handled == 0


def test_a_consumer_joining_and_one_leaving_mid_stream_lose_and_double_nothing(
    settings: Settings, smtp_server: SmtpCapture, postgres_url: str, tmp_path: Path
) -> None:
    settings = dataclasses.replace(settings, state_url=postgres_url, max_poll_records=20)
    smtp_server.delay_s = 0.05  # at most 80 e-mails/s: the stream outlasts a join (process start + group join)
    ids = order_ids("FREB", 1000)
    produce_orders(settings, ids)
    first = ConsumerProcess(settings, tmp_path / "first.log").start()
    second = ConsumerProcess(settings, tmp_path / "second.log")
    try:
        _wait_for_messages(smtp_server, 150, "the first consumer's first 150 e-mails")
        # A loaded machine can take 10 s or more to start a process and join a group: the stream
        # slows down meanwhile, so that the join lands mid-stream however long it takes.
        smtp_server.delay_s = 0.5
        second.start()  # joins: partitions move mid-stream
        deadline = time.monotonic() + 60
        while "partitions assigned" not in log_text(tmp_path / "second.log") and time.monotonic() < deadline:
            time.sleep(0.1)
        joined = "partitions assigned" in log_text(tmp_path / "second.log")
        joined_with = len(smtp_server.messages)
        smtp_server.delay_s = 0.05
        _wait_for_messages(smtp_server, joined_with + 100, "100 e-mails after the join")
        left_at, left_with = time.monotonic(), len(smtp_server.messages)
        first.signal(signal.SIGTERM)  # leaves: its partitions move to the second
        assert first.wait(30) == 0
        tally = wait_for_orders(lambda: smtp_server.messages, ids, timeout_s=90)
        recovery = time.monotonic() - left_at
    finally:
        first.kill()
        second.kill()
    record(FaultResult("4 join + leave mid-stream (PostgreSQL, 2 processes)", len(ids), tally.expected,
                       tally.received, tally.lost, tally.duplicated, 0, round(recovery, 1)))
    assert joined, "the second consumer never got partitions"
    assert joined_with < len(ids) and left_with < len(ids), "the join or the leave was not mid-stream"
    assert tally.lost == 0
    assert tally.duplicated == 0


def _wait_for_messages(smtp_server: SmtpCapture, count: int, what: str, timeout_s: float = 60.0) -> None:
    """A consumer that died fails the test here, with what it was waiting for, not at the suite's timeout."""
    deadline = time.monotonic() + timeout_s
    while len(smtp_server.messages) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what} ({len(smtp_server.messages)} e-mails)")
        time.sleep(0.1)
