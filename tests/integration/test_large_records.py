"""Large records, end to end: up to ``--max-record-bytes`` a dead letter keeps the original bytes and
``ordernotify dlq replay`` puts them back; beyond it the dead letter keeps only the size, and the stream
goes on either way.

The records are written by a plain KafkaProducer that raised its own limit, as a platform producer
would; the dev broker takes records of any size (it has no ``max.message.bytes``), so the limits
tested here are ordernotify's own.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
from kafka import KafkaProducer

from cli.main import main
from devstack.smtp_capture import SmtpCapture
from ordernotify.config import Settings
from schemas.codec import MAGIC, EventCodec
from schemas.registry import ORDER_EVENT, default_registry
from tests import factories as f
from tests.consumer_runner import ConsumerRunner
from tests.kafka_reading import read_topic

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
TEN_MB = 10 * MiB


def _produce_raw(settings: Settings, records: list[tuple[bytes, bytes]], max_request_size: int,
                 headers: list[tuple[str, bytes]] | None = None) -> None:
    producer = KafkaProducer(**settings.kafka_client_options(), acks="all", max_request_size=max_request_size)
    try:
        for key, value in records:
            producer.send(settings.events_topic, key=key, value=value, headers=headers or []).get(30)
    finally:
        producer.close()


def _flags(settings: Settings) -> list[str]:
    return ["--bootstrap-servers", settings.bootstrap_servers, "--events-topic", settings.events_topic,
            "--dlq-topic", settings.dlq_topic]


@pytest.mark.slow
def test_a_ten_megabyte_undecodable_record_is_dead_lettered_whole_and_replayed_byte_for_byte(
    settings: Settings, smtp_server: SmtpCapture, capsys: pytest.CaptureFixture[str]
) -> None:
    big = b"\x00" + random.Random(7).randbytes(TEN_MB - 1)  # not C3 01: undecodable
    good = f.placed_event(order_id="AFTER-BIG")
    _produce_raw(settings, [(b"BIG", big), (b"AFTER-BIG", EventCodec().encode(good))], TEN_MB + MiB,
                 headers=[("trace", b"t-1")])
    with ConsumerRunner(settings) as runner:
        runner.wait_handled(2, timeout_s=30)
    assert [m.rcpt_tos for m in smtp_server.wait_for(1)] == [(good.customer.email,)]  # not blocked by it

    (dead,) = read_topic(settings, settings.dlq_topic, expected=1)
    headers = dict(dead.headers)
    assert headers["dlq.reason"] == b"undecodable" and "dlq.value_dropped" not in headers
    assert (dead.key, headers["dlq.source.offset"], headers["trace"]) == (b"BIG", b"0", b"t-1")
    assert dead.value == big  # the original bytes, all of them

    assert main(["dlq", "replay", "--reason", "undecodable", *_flags(settings)]) == 0
    assert f"replayed 1 to {settings.events_topic}" in capsys.readouterr().out
    events = read_topic(settings, settings.events_topic, expected=3)
    replayed = [r for r in events if "dlq.replayed_from" in dict(r.headers)]
    assert len(events) == 3 and len(replayed) == 1
    assert replayed[0].key == b"BIG" and replayed[0].value == big
    assert dict(replayed[0].headers)["trace"] == b"t-1"


def test_a_record_over_the_configured_limit_is_dead_lettered_without_its_value_and_the_stream_goes_on(
    settings: Settings, smtp_server: SmtpCapture
) -> None:
    """The last resort: the dead letter keeps where the record is and its size, never blocks the partition."""
    limited = dataclasses.replace(settings, max_record_bytes=MiB)
    big = MAGIC + default_registry().latest(ORDER_EVENT).fingerprint + b"\x00" * (2 * MiB)
    good = f.placed_event(order_id="AFTER-BIG")
    _produce_raw(limited, [(b"BIG", big), (b"AFTER-BIG", EventCodec().encode(good))], 3 * MiB)
    with ConsumerRunner(limited) as runner:
        runner.wait_handled(2, timeout_s=20)
    assert [m.rcpt_tos for m in smtp_server.wait_for(1)] == [(good.customer.email,)]
    (dead,) = read_topic(limited, limited.dlq_topic, expected=1)
    headers: dict[str, Any] = dict(dead.headers)
    assert headers["dlq.reason"] in (b"undecodable", b"invalid_event")
    assert dead.value is None and int(headers["dlq.value_dropped"]) == len(big)
    assert headers["dlq.source.offset"] == b"0" and dead.key == b"BIG"
