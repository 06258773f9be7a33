"""POST /webhooks/ses over loopback HTTP: SES notifications in SNS envelopes signed with our stand-in SNS key."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consumers.deliver.verp import address_digest, envelope_sender
from feedback.classify import FeedbackKind
from ordernotify.config import Settings
from tests.feedback.webhooks.conftest import CertServer, Hooks, SnsSigner, fixture, start_hooks, with_settings

NOTIFICATION_ID = "0123456789abcdef0123456789abcdef"


async def post(hooks: Hooks, message: dict[str, Any], content_type: str = "text/plain; charset=UTF-8") -> Any:
    response = await hooks.client.post("/webhooks/ses", data=json.dumps(message),
                                       headers={"Content-Type": content_type,
                                                "x-amz-sns-message-type": str(message.get("Type"))})
    return response.status, await response.json()


@pytest.mark.parametrize("version", ["1", "2"])
async def test_the_documented_bounce_is_a_hard_bounce_of_its_recipient(
        hooks: Hooks, signer: SnsSigner, version: str) -> None:
    status, answer = await post(hooks, signer.notification(fixture("ses_bounce.json"), version))

    assert (status, answer) == (200, {"result": "accepted", "applied": 1})
    [(feedback, token)] = hooks.received
    assert (feedback.kind, feedback.recipient, feedback.status, feedback.source) == (
        FeedbackKind.HARD_BOUNCE, "jane@example.org", "5.1.1", "ses")
    assert feedback.diagnostic == "smtp; 550 5.1.1 <jane@example.org>... User"
    assert token is None  # sent from john@example.org, not from one of our bounce addresses
    assert hooks.counted("hard_bounce", "ses") == 1


async def test_the_documented_complaint_is_a_complaint_of_its_recipient(hooks: Hooks, signer: SnsSigner) -> None:
    status, _ = await post(hooks, signer.notification(fixture("ses_complaint.json")), "application/json")

    assert status == 200
    [(feedback, token)] = hooks.received
    assert (feedback.kind, feedback.recipient, feedback.diagnostic) == (
        FeedbackKind.COMPLAINT, "richard@example.org", "abuse")
    assert hooks.counted("complaint", "ses") == 1


@pytest.mark.parametrize(("bounce_type", "kind"), [("Transient", FeedbackKind.SOFT_BOUNCE),
                                                    ("Undetermined", FeedbackKind.UNKNOWN)])
async def test_other_bounce_types(hooks: Hooks, signer: SnsSigner, bounce_type: str, kind: FeedbackKind) -> None:
    notification = fixture("ses_bounce.json")
    notification["bounce"]["bounceType"] = bounce_type

    await post(hooks, signer.notification(notification))

    [(feedback, _)] = hooks.received
    assert feedback.kind is kind
    assert ("Undetermined" in feedback.detail) == (kind is FeedbackKind.UNKNOWN)


async def test_our_verp_envelope_sender_names_the_notification(
        hooks: Hooks, signer: SnsSigner, settings: Settings) -> None:
    notification = fixture("ses_bounce.json")
    notification["mail"]["source"] = envelope_sender(NOTIFICATION_ID, "Jane@example.org", settings)

    await post(hooks, signer.notification(notification))

    [(_, token)] = hooks.received
    assert token is not None and token.notification_id == NOTIFICATION_ID
    assert address_digest("jane@example.org").startswith(token.digest_prefix)


async def test_a_bounce_for_another_recipient_than_the_tokens_is_not_applied(
        hooks: Hooks, signer: SnsSigner, settings: Settings) -> None:
    notification = fixture("ses_bounce.json")
    notification["mail"]["source"] = envelope_sender(NOTIFICATION_ID, "mary@example.org", settings)

    status, answer = await post(hooks, signer.notification(notification))

    assert (status, answer["applied"]) == (200, 0)
    assert hooks.received == []
    assert hooks.rejected("recipient_mismatch") == 1


async def test_a_message_changed_after_signing_is_refused(hooks: Hooks, signer: SnsSigner) -> None:
    message = signer.notification(fixture("ses_complaint.json"))
    message["Message"] = message["Message"].replace("richard@example.org", "someone.else@example.org")

    status, answer = await post(hooks, message)

    assert status == 403 and "signature" in answer["error"]
    assert hooks.received == []
    assert hooks.rejected("bad_signature") == 1


@pytest.mark.parametrize("cert_url", [
    "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    "https://attacker.example/SimpleNotificationService-x.pem",
    "https://user@sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-x.pem",
])
async def test_a_certificate_from_anywhere_but_sns_is_not_even_fetched(
        hooks: Hooks, signer: SnsSigner, cert_server: CertServer, cert_url: str) -> None:
    message = signer.notification(fixture("ses_bounce.json"))
    message["SigningCertURL"] = cert_url

    status, answer = await post(hooks, message)

    assert status == 403 and "sns.REGION.amazonaws.com" in answer["error"]
    assert hooks.received == [] and cert_server.fetched == []
    assert hooks.rejected("bad_signature") == 1


async def test_an_expired_certificate_is_refused(hooks: Hooks, signer: SnsSigner, cert_server: CertServer) -> None:
    expired = SnsSigner(signer.key, cert_server.url("/SimpleNotificationService-expired.pem"))

    status, answer = await post(hooks, expired.notification(fixture("ses_bounce.json")))

    assert status == 403 and "not valid now" in answer["error"]
    assert hooks.received == []


async def test_a_topic_not_configured_is_refused(hooks: Hooks, signer: SnsSigner) -> None:
    message = signer.sign({**signer.notification(fixture("ses_bounce.json")),
                           "TopicArn": "arn:aws:sns:us-east-1:999999999999:someone-elses"})

    status, answer = await post(hooks, message)

    assert status == 403 and "--ses-sns-topic-arns" in answer["error"]
    assert hooks.received == []


async def test_the_certificate_is_fetched_once(hooks: Hooks, signer: SnsSigner, cert_server: CertServer) -> None:
    for _ in range(3):
        assert (await post(hooks, signer.notification(fixture("ses_bounce.json"))))[0] == 200

    assert cert_server.fetched == ["/SimpleNotificationService-test.pem"]
    assert len(hooks.received) == 3


async def test_a_delivery_notification_is_ignored_and_counted(hooks: Hooks, signer: SnsSigner) -> None:
    notification = {**fixture("ses_bounce.json"), "notificationType": "Delivery"}

    status, answer = await post(hooks, signer.notification(notification))

    assert (status, answer) == (200, {"result": "ignored"})
    assert hooks.received == []
    assert hooks.counted("unknown", "ses") == 1


async def test_a_message_that_is_not_an_ses_notification_is_malformed(hooks: Hooks, signer: SnsSigner) -> None:
    message = signer.sign({**fixture("sns_notification.json"), "TopicArn": "arn:aws:sns:us-east-1:123456789012:"
                           "ses-feedback"})  # Message "Hello world!": signed, but not JSON

    status, _ = await post(hooks, message)

    assert status == 400
    assert hooks.rejected("malformed") == 1 and hooks.received == []


def subscription(signer: SnsSigner, cert_server: CertServer) -> dict[str, Any]:
    return signer.sign({
        "Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-feedback",
        "Message": "You have chosen to subscribe to the topic. To confirm the subscription, visit the SubscribeURL.",
        "SubscribeURL": cert_server.url("/confirm"), "Timestamp": "2012-04-26T20:45:04.751Z"})


@pytest.mark.parametrize("confirm", [True, False])
async def test_a_subscription_is_confirmed_only_when_allowed(
        settings: Settings, signer: SnsSigner, cert_server: CertServer, confirm: bool) -> None:
    hooks = await start_hooks(with_settings(settings, sns_confirm_subscriptions=confirm))
    try:
        status, answer = await post(hooks, subscription(signer, cert_server))
    finally:
        await hooks.client.close()

    assert (status, answer) == (200, {"result": "ignored"})
    assert ("/confirm" in cert_server.fetched) is confirm
    assert hooks.received == []
