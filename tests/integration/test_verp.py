"""Signed bounce addresses on the wire: a real consumer's MAIL FROM, read by a real SMTP server."""

from __future__ import annotations

import dataclasses

import pytest

from consumers.deliver.verp import VerpToken, address_digest, read_token
from consumers.notification import Notification
from devstack.smtp_capture import DROP_AFTER_DATA, SmtpCapture
from ordernotify.config import Secret, Settings
from producers.event_producer import OrderEventProducer
from tests import factories
from tests.consumer_runner import ConsumerRunner

pytestmark = pytest.mark.integration


def test_the_envelope_sender_of_a_real_send_is_the_signed_bounce_address_also_on_a_resend(
    settings: Settings, smtp_server: SmtpCapture
) -> None:
    verp = dataclasses.replace(settings, bounce_domain="bounces.shop.example",
                               verp_secret=Secret("a secret of at least 16 characters"))
    event = factories.placed_event(order_id="V-1", customer=factories.make_customer(email="zoe@example.org"))
    smtp_server.replies = [DROP_AFTER_DATA]  # the server keeps the first copy, the consumer never hears 250
    with OrderEventProducer(verp) as producer:
        producer.send_and_wait(event)
    with ConsumerRunner(verp) as runner:
        runner.wait_handled(1)
        first, resent = smtp_server.wait_for(2)
        runner.wait_idle()
    expected = VerpToken(Notification.for_event(event).notification_id, address_digest("zoe@example.org")[:10])
    assert first.mail_from.startswith("bounces+") and first.mail_from.endswith("@bounces.shop.example")
    assert read_token(first.mail_from, verp) == expected
    assert first.message["From"].addresses[0].addr_spec == settings.sender_address
    assert first.rcpt_tos == ("zoe@example.org",)
    assert (resent.mail_from, resent.data) == (first.mail_from, first.data)  # the stored bytes and envelope
