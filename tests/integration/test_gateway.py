"""The webhook gateway over real HTTP on loopback, against the real broker: a signed event is answered only after
the broker's acknowledgement and then e-mailed; retries of one delivery become one e-mail; whatever is refused
publishes nothing."""

from __future__ import annotations

import dataclasses
import json

import pytest

from devstack.smtp_capture import SmtpCapture
from ordernotify.config import MiB, Secret, Settings
from schemas.records import to_json_record
from tests import factories
from tests.consumer_runner import ConsumerRunner
from tests.gateway_runner import SECRET, GatewayRunner, event_body, signed_headers
from tests.kafka_reading import read_topic

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, gateway_host="127.0.0.1", gateway_port=0,
                               gateway_webhook_secrets=Secret(SECRET))


def test_a_signed_event_is_acknowledged_by_the_broker_then_e_mailed(
    gateway_settings: Settings, smtp_server: SmtpCapture
) -> None:
    event = factories.placed_event(order_id="GW-1")
    with GatewayRunner(gateway_settings) as gateway:
        answer = gateway.post_event(event)
        assert gateway.request("GET", "/readyz").status == 200
        metrics = gateway.request("GET", "/metrics").body["text"]
    assert answer.status == 202
    assert answer.body == {"result": "accepted", "event_ids": [event.event_id]}
    (record,) = read_topic(gateway_settings, gateway_settings.events_topic, expected=1)  # there when answered
    assert record.key == b"GW-1"
    assert 'ordernotify_gateway_requests_total{outcome="accepted",source="events"} 1.0' in metrics
    assert "ordernotify_gateway_produce_latency_seconds_count 1.0" in metrics
    with ConsumerRunner(gateway_settings) as consumer:
        consumer.wait_handled(1)
    (message,) = smtp_server.wait_for(1)
    assert "GW-1" in message.subject and message.rcpt_tos == (event.customer.email,)


def test_the_same_delivery_three_times_is_one_e_mail(gateway_settings: Settings, smtp_server: SmtpCapture) -> None:
    event = factories.placed_event(order_id="GW-2")
    body = event_body(event)
    with GatewayRunner(gateway_settings) as gateway:
        # a platform's retries: the same webhook id and body, signed again at each attempt
        answers = [gateway.post_signed(body, webhook_id="msg_retried") for _ in range(3)]
    assert [a.status for a in answers] == [202, 202, 202]
    assert {a.body["event_ids"][0] for a in answers} == {event.event_id}
    with ConsumerRunner(gateway_settings) as consumer:
        consumer.wait_handled(3)
        consumer.wait_idle()
    assert len(read_topic(gateway_settings, gateway_settings.events_topic, expected=3)) == 3
    assert len(smtp_server.wait_for(1)) == 1
    assert len(smtp_server.messages) == 1


def test_refused_requests_get_their_documented_answer_and_publish_nothing(gateway_settings: Settings) -> None:
    good = factories.placed_event(order_id="GW-OK")
    body = event_body(good)
    invalid = to_json_record(factories.placed_event(order_id="GW-BAD"))
    invalid["customer"]["email"] = "not an address"
    invalid_body = json.dumps(invalid).encode()
    large = b'{"padding": "' + b"x" * (10 * MiB) + b'"}'
    with GatewayRunner(gateway_settings) as gateway:
        bad_signature = gateway.request("POST", "/v1/events", body, {
            **signed_headers(body), "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="})
        unsigned = gateway.request("POST", "/v1/events", body, {"Content-Type": "application/json"})
        expired = gateway.post_signed(body, timestamp=1614265330)
        truncated = gateway.post_signed(body[: len(body) // 2])
        with_bom = gateway.post_signed(b"\xef\xbb\xbf" + body)
        not_an_event = gateway.post_signed(invalid_body)
        too_large = gateway.post_signed(large)
        wrong_type = gateway.post_signed(body, content_type="text/plain")
        metrics = gateway.request("GET", "/metrics").body["text"]
        accepted = gateway.post_event(good)  # the one record the topic may hold
    assert (bad_signature.status, unsigned.status, expired.status) == (401, 401, 401)
    assert "no v1 signature" in bad_signature.body["error"]
    assert "missing webhook-id" in unsigned.body["error"]
    assert "outside the 300 s replay window" in expired.body["error"]
    assert truncated.status == 400 and "not valid JSON" in truncated.body["error"]
    assert f"of {len(body) // 2})" in truncated.body["error"]  # where it stopped
    assert with_bom.status == 400 and "Unexpected UTF-8 BOM" in with_bom.body["error"]
    assert not_an_event.status == 400 and not_an_event.body["field"] == "customer.email"
    assert too_large.status == 413 and "--gateway-max-body-bytes" in too_large.body["error"]
    assert wrong_type.status == 415
    assert 'ordernotify_gateway_signature_failures_total{source="events"} 3.0' in metrics
    for outcome, count in (("bad_signature", 3), ("malformed", 2), ("invalid", 1), ("too_large", 1),
                           ("unsupported_media_type", 1)):
        assert f'ordernotify_gateway_requests_total{{outcome="{outcome}",source="events"}} {count}.0' in metrics
    assert accepted.status == 202
    records = read_topic(gateway_settings, gateway_settings.events_topic, expected=1)
    assert [r.key for r in records] == [b"GW-OK"]


def test_events_is_off_without_a_secret_and_unknown_platforms_are_not_found(gateway_settings: Settings) -> None:
    settings = dataclasses.replace(gateway_settings, gateway_webhook_secrets=Secret(""))
    body = event_body(factories.placed_event(order_id="GW-OFF"))
    with GatewayRunner(settings) as gateway:
        off = gateway.post_signed(body)
        platform = gateway.request("POST", "/v1/platforms/nosuch", body, {"Content-Type": "application/json"})
        health = gateway.request("GET", "/healthz")
    assert off.status == 404 and "ORDERNOTIFY_GATEWAY_WEBHOOK_SECRETS" in off.body["error"]
    assert platform.status == 404
    assert health.status == 200
