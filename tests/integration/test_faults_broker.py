"""Fault 5: the broker restarts, or is not there at all.

With memory storage the dev broker forgets everything on a restart: events produced before it are gone
(Apache Kafka keeps them), and the topics are created again as operators' tooling would. That test proves
the clients' part: the running consumer and an open producer reconnect on their own, and a producer facing
no broker tells its caller instead of dropping events. On S3 storage (a local moto server) the broker keeps
its log and the group's offsets like Apache Kafka: that test kills it mid-stream and checks that the
consumer goes on from its committed offsets, losing and doubling nothing.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from devstack.broker import EmbeddedBroker
from devstack.ports import free_port, wait_for_port
from devstack.smtp_capture import SmtpCapture
from ordernotify.config import Settings
from ordernotify.topics import ensure_topics
from producers.event_producer import OrderEventProducer
from producers.exceptions import DeliveryFailed
from tests import factories
from tests.integration.fault_support import (
    ConsumerProcess,
    FaultResult,
    order_ids,
    produce_orders,
    record,
    wait_for_orders,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_consumer_and_producer_reconnect_after_a_broker_restart(
    settings: Settings, smtp_server: SmtpCapture, tmp_path: Path
) -> None:
    with EmbeddedBroker() as broker:
        settings = dataclasses.replace(settings, bootstrap_servers=broker.bootstrap_servers, produce_timeout_s=30.0)
        ensure_topics(settings, partitions=3)
        before, after = order_ids("FBRK", 50), order_ids("FBRK", 50, start=50)
        with OrderEventProducer(settings) as producer, ConsumerProcess(settings, tmp_path / "consumer.log"):
            for order_id in before:
                producer.send_and_wait(factories.placed_event(order_id=order_id))
            assert wait_for_orders(lambda: smtp_server.messages, before, timeout_s=60).lost == 0
            broker.restart(pause_s=2.0)
            restarted_at = time.monotonic()
            ensure_topics(settings, partitions=3)
            refused = 0
            for order_id in after:  # the same producer, reconnecting on its own
                event = factories.placed_event(order_id=order_id)
                for _attempt in range(3):
                    try:
                        producer.send_and_wait(event)
                        break
                    except DeliveryFailed as exc:  # retriable: the caller retries, as the platform would
                        assert exc.retriable
                        refused += 1
                else:
                    pytest.fail(f"{order_id} not delivered in 3 attempts")
            tally = wait_for_orders(lambda: smtp_server.messages, before + after, timeout_s=90)
            recovery = time.monotonic() - restarted_at
    record(FaultResult("5 broker restart (memory storage, topics recreated)", 100, tally.expected, tally.received,
                       tally.lost, tally.duplicated, 0, round(recovery, 1)))
    assert tally.lost == 0 and tally.duplicated == 0
    # The dev broker forgot the idempotent producer's id with everything else: at most the first sends after
    # the restart are refused (UnknownProducerIdError, surfaced as DeliveryFailed), never dropped silently.
    assert refused <= 3


def test_a_producer_without_a_broker_tells_its_caller_within_its_timeout(settings: Settings) -> None:
    settings = dataclasses.replace(settings, bootstrap_servers=f"127.0.0.1:{free_port()}", produce_timeout_s=30.0,
                                   kafka_connect_timeout_s=3.0)
    started = time.monotonic()
    with pytest.raises(DeliveryFailed) as raised:
        producer = OrderEventProducer(settings)
        try:
            producer.send_and_wait(factories.placed_event(order_id="NOBROKER-1"))
        finally:
            producer.close(1)
    assert time.monotonic() - started < 10  # the connect timeout, not the 30 s for an acknowledgement
    assert "cannot reach Kafka at 127.0.0.1:" in str(raised.value)  # says what and where, not a bare timeout
    assert "within 3 s" in str(raised.value)


@pytest.fixture
def s3_storage(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A moto S3 server with an empty bucket: the dev broker's storage URL and environment."""
    port = free_port()
    with open(tmp_path / "moto.log", "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port)], stdout=out, stderr=out)
    try:
        wait_for_port(port, 30)
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="x", aws_secret_access_key="x",
                     region_name="us-east-1").create_bucket(Bucket="tansu")
        yield "s3://tansu/", {"AWS_ENDPOINT": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "x",
                              "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    finally:
        server.terminate()
        server.wait(10)


def test_broker_killed_mid_stream_on_durable_storage_loses_and_doubles_nothing(
    settings: Settings, smtp_server: SmtpCapture, tmp_path: Path, s3_storage: tuple[str, dict[str, str]]
) -> None:
    storage, env = s3_storage
    with EmbeddedBroker(storage_engine=storage, env=env, log_path=tmp_path / "broker.log") as broker:
        settings = dataclasses.replace(settings, bootstrap_servers=broker.bootstrap_servers)
        ensure_topics(settings, partitions=3)
        before, after = order_ids("FBS3", 300), order_ids("FBS3", 100, start=300)
        produce_orders(settings, before)
        with ConsumerProcess(settings, tmp_path / "consumer.log"):
            smtp_server.wait_for(60, timeout_s=60)
            broker.kill()  # SIGKILL, mid-stream: what it acknowledged is in S3, the rest is the clients' problem
            killed_at = time.monotonic()
            time.sleep(3)
            broker.start()
            produce_orders(settings, after)  # the stream goes on
            tally = wait_for_orders(lambda: smtp_server.messages, before + after, timeout_s=120)
            recovery = time.monotonic() - killed_at
    record(FaultResult("5 broker SIGKILLed mid-stream, restarted (S3 storage: data kept)", len(before + after),
                       tally.expected, tally.received, tally.lost, tally.duplicated, 0, round(recovery, 1)))
    assert tally.lost == 0 and tally.duplicated == 0
    assert tally.received == len(before + after)
