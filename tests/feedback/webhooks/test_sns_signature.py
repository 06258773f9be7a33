"""The string SNS signs, written out by hand from the AWS documentation's field order, and the serving helper."""

from __future__ import annotations

import aiohttp
import pytest

from feedback.exceptions import MalformedWebhook
from feedback.sns_signature import canonical_string
from feedback.webhooks import start_webhooks
from ordernotify.config import Settings
from ordernotify.metrics import Metrics
from tests.feedback.webhooks.conftest import fixture


def test_a_notification_signs_message_id_subject_timestamp_topic_and_type_in_that_order() -> None:
    expected = ("Message\nHello world!\nMessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\nSubject\nMy First Message\n"
                "Timestamp\n2012-05-02T00:54:06.655Z\nTopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\n"
                "Type\nNotification\n")

    assert canonical_string(fixture("sns_notification.json")) == expected.encode()


def test_a_notification_without_subject_leaves_it_out() -> None:
    message = fixture("sns_notification.json")
    del message["Subject"]

    assert b"Subject" not in canonical_string(message)
    assert canonical_string(message).startswith(b"Message\nHello world!\nMessageId\n")


def test_a_subscription_confirmation_signs_the_subscribe_url_and_token() -> None:
    message = {"Type": "SubscriptionConfirmation", "MessageId": "m", "Token": "t", "TopicArn": "a",
               "Message": "confirm", "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?x", "Timestamp": "ts"}

    assert canonical_string(message) == (b"Message\nconfirm\nMessageId\nm\nSubscribeURL\n"
                                         b"https://sns.us-east-1.amazonaws.com/?x\nTimestamp\nts\nToken\nt\n"
                                         b"TopicArn\na\nType\nSubscriptionConfirmation\n")


@pytest.mark.parametrize("message", [{"Type": "Gossip"}, {"Type": "Notification", "Message": "no id"}, {}])
def test_an_unknown_type_or_a_missing_field_is_malformed(message: dict[str, str]) -> None:
    with pytest.raises(MalformedWebhook):
        canonical_string(message)


async def test_start_webhooks_serves_on_the_configured_address() -> None:
    async def on_feedback(*_: object) -> None:
        raise AssertionError("no feedback was posted")

    runner = await start_webhooks(Settings(webhook_host="127.0.0.1", webhook_port=0), on_feedback, metrics=Metrics())
    try:
        host, port = runner.addresses[0][:2]
        async with aiohttp.ClientSession() as session, session.get(f"http://{host}:{port}/healthz") as response:
            assert (response.status, await response.json()) == (200, {"status": "ok"})
    finally:
        await runner.cleanup()
