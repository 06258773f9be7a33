"""End to end over the real broker and a real SMTP server: events in, e-mails out."""

from __future__ import annotations

import io

import fastavro
import pytest
from kafka import KafkaProducer

from devstack.smtp_capture import SmtpCapture
from ordernotify.config import Settings
from producers.event_producer import OrderEventProducer
from schemas.codec import MAGIC, EventCodec
from tests import factories
from tests.consumer_runner import ConsumerRunner
from tests.kafka_reading import read_topic

pytestmark = pytest.mark.integration


def _produce(settings: Settings, events: list) -> None:
    with OrderEventProducer(settings) as producer:
        for event in events:
            producer.send_and_wait(event)


def _produce_raw(settings: Settings, key: bytes, value: bytes) -> None:
    producer = KafkaProducer(**settings.kafka_client_options(), acks="all")
    try:
        producer.send(settings.events_topic, key=key, value=value).get(10)
    finally:
        producer.close()


def test_each_event_type_becomes_one_email_with_both_parts(settings: Settings, smtp_server: SmtpCapture) -> None:
    customer = factories.make_customer(email="zoe@example.org", display_name="Zoë Ünal", locale="en-GB")
    events = [  # one order per type, so that no two of them are merged into one e-mail
        factories.placed_event(order_id="A-100", customer=customer),
        factories.out_of_stock_event(order_id="A-101", customer=customer),
        factories.price_error_event(order_id="A-102", customer=customer),
        factories.shipped_event(order_id="A-103", customer=customer),
        factories.delivered_event(order_id="A-104", customer=customer),
    ]
    _produce(settings, events)
    with ConsumerRunner(settings) as runner:
        runner.wait_handled(len(events))
        messages = smtp_server.wait_for(len(events))
        runner.wait_idle()
    assert len(messages) == len(events)
    for captured in messages:
        assert captured.rcpt_tos == ("zoe@example.org",)
        order_id = next(e.order_id for e in events if e.order_id in captured.subject)
        assert captured.message.get_content_type() == "multipart/alternative"
        assert order_id in captured.body("plain") and order_id in captured.body("html")
        assert captured.message["Message-ID"] and captured.message["Date"]
        assert captured.message["To"].addresses[0].display_name == "Zoë Ünal"
    shipped = events[3].payload
    shipped_mail = next(m for m in messages if shipped.tracking_url in m.body("plain"))
    assert shipped.carrier in shipped_mail.body("plain")
    assert len({m.message["Message-ID"] for m in messages}) == len(events)


def test_restarted_consumer_resumes_from_committed_offsets_without_resending(
    settings: Settings, smtp_server: SmtpCapture
) -> None:
    first = [factories.placed_event(order_id=f"R-{i}") for i in range(3)]
    _produce(settings, first)
    with ConsumerRunner(settings) as runner:
        runner.wait_handled(3)
    smtp_server.wait_for(3)

    second = [factories.placed_event(order_id=f"R-{i}") for i in range(3, 5)]
    _produce(settings, second)
    with ConsumerRunner(settings) as runner:
        runner.wait_handled(2)
        assert runner.running.loop.handled == 2  # nothing from before the restart came back
    messages = smtp_server.wait_for(5)
    assert sorted(m.message["Message-ID"] for m in messages) == sorted({m.message["Message-ID"] for m in messages})
    assert len(messages) == 5


def test_undecodable_and_unknown_schema_records_are_dead_lettered_and_the_stream_goes_on(
    settings: Settings, smtp_server: SmtpCapture
) -> None:
    _produce_raw(settings, b"X-1", b"\x00\x01 not avro at all")
    _produce_raw(settings, b"X-2", MAGIC + b"\x01\x02\x03\x04\x05\x06\x07\x08" + b"\x02")
    good = factories.placed_event(order_id="X-3")
    _produce(settings, [good])
    with ConsumerRunner(settings) as runner:
        runner.wait_handled(3)
    assert [m.rcpt_tos for m in smtp_server.wait_for(1)] == [(good.customer.email,)]
    dead = read_topic(settings, settings.dlq_topic, expected=2)
    reasons = sorted(dict(r.headers)["dlq.reason"].decode() for r in dead)
    assert reasons == ["undecodable", "unknown_schema"]
    by_key = {r.key: r for r in dead}
    assert by_key[b"X-1"].value == b"\x00\x01 not avro at all"  # original bytes kept for replay
    assert dict(by_key[b"X-1"].headers)["dlq.source.topic"] == settings.events_topic.encode()


def test_event_written_with_schema_v1_is_decoded_and_sent(settings: Settings, smtp_server: SmtpCapture) -> None:
    event = factories.placed_event(order_id="V1-1")
    _produce_raw(settings, b"V1-1", EventCodec().encode(event, version=1))
    with ConsumerRunner(settings) as runner:
        runner.wait_handled(1)
    (message,) = smtp_server.wait_for(1)
    assert "V1-1" in message.subject


def test_smtp_5xx_dead_letters_that_message_only(settings: Settings, smtp_server: SmtpCapture) -> None:
    smtp_server.replies = ["550 5.1.1 mailbox unavailable"]
    events = [factories.placed_event(order_id="P-1"), factories.placed_event(order_id="P-2")]
    _produce(settings, events)
    with ConsumerRunner(settings) as runner:
        runner.wait_handled(2)
    assert len(smtp_server.wait_for(1)) == 1
    (dead,) = read_topic(settings, settings.dlq_topic, expected=1)
    headers = dict(dead.headers)
    assert headers["dlq.reason"] == b"smtp_rejected"
    assert b"550" in headers["dlq.detail"]


def test_avro_bytes_without_single_object_header_are_refused(settings: Settings, smtp_server: SmtpCapture) -> None:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, {"type": "string"}, "hello")
    _produce_raw(settings, b"N-1", buffer.getvalue())
    with ConsumerRunner(settings) as runner:
        runner.wait_handled(1)
    (dead,) = read_topic(settings, settings.dlq_topic, expected=1)
    assert dict(dead.headers)["dlq.reason"] == b"undecodable"
    assert smtp_server.messages == []
