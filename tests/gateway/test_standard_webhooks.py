"""The Standard Webhooks scheme: the specification's own test vector, rotation, replay window, what is refused."""

from __future__ import annotations

import pytest

from gateway.exceptions import BadSignature
from gateway.standard_webhooks import SignedDelivery, StandardWebhooksVerifier, signature
from ordernotify.config import gateway_secret_keys
from ordernotify.errors import ConfigError

# The specification's test vector (standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py,
# test_sign_function; the same values are in each of its libraries' tests).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
OTHER_SECRET = "whsec_c2VjcmV0LW9mLWFub3RoZXItc2VuZGVyLTAxMjM0NTY3"


def _verifier(secrets: str = SECRET, now: float = TIMESTAMP, window_s: float = 300.0) -> StandardWebhooksVerifier:
    verifier = StandardWebhooksVerifier.from_secrets(secrets, window_s, clock=lambda: now)
    assert verifier is not None
    return verifier


def _headers(sig: str = SIGNATURE, stamp: str = str(TIMESTAMP), msg_id: str = MSG_ID) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": sig}


def test_signing_reproduces_the_specifications_test_vector() -> None:
    (key,) = gateway_secret_keys(SECRET)
    assert signature(key, MSG_ID, TIMESTAMP, BODY) == SIGNATURE


def test_the_specifications_signed_delivery_is_taken() -> None:
    assert _verifier().verify(_headers(), BODY) == SignedDelivery(MSG_ID, TIMESTAMP)


def test_a_secret_without_its_prefix_is_the_same_key() -> None:
    assert _verifier(SECRET.removeprefix("whsec_")).verify(_headers(), BODY).webhook_id == MSG_ID


@pytest.mark.parametrize(("headers", "body", "says"), [
    (_headers(), b'{"test": 2432232315}', "no v1 signature"),  # body changed after signing
    (_headers(msg_id="msg_other"), BODY, "no v1 signature"),  # another delivery's id
    (_headers(stamp=str(TIMESTAMP + 1)), BODY, "no v1 signature"),  # the timestamp is signed too
    (_headers(sig="v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="), BODY, "no v1 signature"),  # one bit off
    (_headers(sig="v2," + SIGNATURE[3:]), BODY, "no v1 signature"),  # a version we do not know
    (_headers(sig="v1,not base64!"), BODY, "no v1 signature"),
    (_headers(stamp="yesterday"), BODY, "not whole seconds"),
    ({"webhook-timestamp": str(TIMESTAMP), "webhook-signature": SIGNATURE}, BODY, "missing webhook-id"),
    ({}, BODY, "missing webhook-id, webhook-timestamp, webhook-signature header"),
])
def test_what_is_refused_and_the_answer_says_why(headers: dict[str, str], body: bytes, says: str) -> None:
    with pytest.raises(BadSignature, match=says) as refused:
        _verifier().verify(headers, body)
    assert refused.value.status == 401


@pytest.mark.parametrize(("now", "says"), [(TIMESTAMP + 301, "301 s ago"), (TIMESTAMP - 301, "301 s ahead")])
def test_outside_the_replay_window_either_way_is_refused(now: float, says: str) -> None:
    with pytest.raises(BadSignature, match=f"{says}, outside the 300 s replay window"):
        _verifier(now=now).verify(_headers(), BODY)


def test_at_the_edge_of_the_replay_window_is_taken() -> None:
    assert _verifier(now=TIMESTAMP + 300).verify(_headers(), BODY).timestamp == TIMESTAMP


def test_during_a_rotation_any_signature_matching_any_secret_is_taken() -> None:
    (other_key,) = gateway_secret_keys(OTHER_SECRET)
    others = signature(other_key, MSG_ID, TIMESTAMP, BODY)
    # the sender signs with old and new secret; this gateway holds only one of them, either one
    header = f"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {others} {SIGNATURE}"
    assert _verifier(SECRET).verify(_headers(header), BODY).webhook_id == MSG_ID
    assert _verifier(OTHER_SECRET).verify(_headers(header), BODY).webhook_id == MSG_ID
    # the gateway holds both while the sender still signs with the old one only
    assert _verifier(f"{OTHER_SECRET} {SECRET}").verify(_headers(), BODY).webhook_id == MSG_ID
    with pytest.raises(BadSignature):
        _verifier(OTHER_SECRET).verify(_headers(), BODY)


def test_no_secret_means_the_endpoint_is_off() -> None:
    assert StandardWebhooksVerifier.from_secrets("", 300.0) is None


@pytest.mark.parametrize(("secret", "says"), [("whsec_not base64!", "not whsec_ followed by base64"),
                                              ("whsec_c2hvcnQ=", "shorter than 16 bytes")])
def test_a_secret_that_cannot_be_a_key_is_a_setting_error(secret: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        gateway_secret_keys(secret)
