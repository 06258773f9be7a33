"""The gateway while Kafka is stopped mid-stream: platforms get 503 with Retry-After within the answer timeout and
send again, and once the broker is back every event the gateway acknowledged is e-mailed exactly once.

The broker keeps its log on S3 storage (a local moto server), as Apache Kafka keeps it on disk: what it
acknowledged before the stop is still there after it, so a missing e-mail would be the gateway's fault.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.broker import EmbeddedBroker
from devstack.smtp_capture import SmtpCapture
from ordernotify.config import Secret, Settings
from ordernotify.topics import ensure_topics
from tests import factories
from tests.gateway_runner import SECRET, GatewayRunner
from tests.integration.fault_support import ConsumerProcess, FaultResult, record, wait_for_orders
from tests.integration.test_faults_broker import s3_storage  # noqa: F401 -- the fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ANSWER_TIMEOUT_S = 2.0
CLIENTS = 4


class Platform(threading.Thread):
    """One platform's webhook sender: each order once, sent again after Retry-After until a 2xx."""

    def __init__(self, gateway: GatewayRunner, number: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.gateway, self.number, self.stop_sending = gateway, number, stop
        self.acknowledged: list[str] = []
        self.answers: Counter[int] = Counter()
        self.retry_after: set[str] = set()
        self.errors: list[str] = []

    def run(self) -> None:
        sequence = 0
        while not self.stop_sending.is_set():
            order_id = f"FGW{self.number}-{sequence:05d}"
            event = factories.placed_event(order_id=order_id)
            while True:
                try:  # later than the answer timeout (and a margin for a busy machine) is a failure
                    answer = self.gateway.post_event(event, timeout_s=ANSWER_TIMEOUT_S + 3)
                except OSError as exc:
                    self.errors.append(f"{order_id}: {exc!r}")
                    return
                self.answers[answer.status] += 1
                if answer.status == 202:
                    self.acknowledged.append(order_id)
                    break
                if answer.status != 503:
                    self.errors.append(f"{order_id}: {answer.status} {answer.body}")
                    return
                self.retry_after.add(answer.headers.get("retry-after", ""))
                time.sleep(float(answer.headers["retry-after"]))
            sequence += 1
            time.sleep(0.05)


def test_kafka_stopped_mid_stream_gets_503_then_every_acknowledged_event_is_e_mailed_once(
    settings: Settings, smtp_server: SmtpCapture, tmp_path: Path, s3_storage: tuple[str, dict[str, str]]  # noqa: F811
) -> None:
    storage, env = s3_storage
    with EmbeddedBroker(storage_engine=storage, env=env, log_path=tmp_path / "broker.log") as broker:
        settings = dataclasses.replace(
            settings, bootstrap_servers=broker.bootstrap_servers, gateway_host="127.0.0.1", gateway_port=0,
            gateway_webhook_secrets=Secret(SECRET), gateway_answer_timeout_s=ANSWER_TIMEOUT_S,
            gateway_retry_after_s=1)
        ensure_topics(settings, partitions=3)
        stop = threading.Event()
        with GatewayRunner(settings) as gateway, ConsumerProcess(settings, tmp_path / "consumer.log"):
            platforms = [Platform(gateway, n, stop) for n in range(CLIENTS)]
            for platform in platforms:
                platform.start()
            # mid-stream: the consumer is e-mailing while the platforms keep sending
            _wait_until(lambda: len(smtp_server.messages) >= 20, "20 e-mails sent")
            broker.kill()  # Kafka stopped, mid-stream (SIGKILL, as the durable broker test does)
            stopped_at = time.monotonic()
            _wait_until(lambda: sum(p.answers[503] for p in platforms) >= CLIENTS, "a 503 for each platform")
            time.sleep(3)
            broker.start()
            acknowledged_then = sum(len(p.acknowledged) for p in platforms)
            _wait_until(lambda: sum(len(p.acknowledged) for p in platforms) >= acknowledged_then + 40,
                        "40 more events acknowledged after the broker came back", timeout_s=90)
            stop.set()
            for platform in platforms:
                platform.join(30)
            acknowledged = [order_id for p in platforms for order_id in p.acknowledged]
            tally = wait_for_orders(lambda: smtp_server.messages, acknowledged, timeout_s=120)
            recovery = time.monotonic() - stopped_at
    unavailable = sum(p.answers[503] for p in platforms)
    record(FaultResult("gateway: Kafka stopped mid-stream (S3 storage), platforms retry on 503",
                       sum(sum(p.answers.values()) for p in platforms), tally.expected, tally.received, tally.lost,
                       tally.duplicated, 0, round(recovery, 1), note=f"{unavailable} answers were 503"))
    assert [error for p in platforms for error in p.errors] == []  # only 202 and 503, each within the timeout
    assert {value for p in platforms for value in p.retry_after} == {"1"}
    assert tally.lost == 0 and tally.duplicated == 0
    assert tally.received == len(acknowledged)


def _wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        time.sleep(0.1)
