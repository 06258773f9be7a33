"""The gateway benchmark signs its requests as the Standard Webhooks specification says, or every answer is 401."""

from __future__ import annotations

import base64

from bench.gateway import new_secret, sign, signature


def test_signature_matches_the_specifications_example() -> None:
    # The example of the Standard Webhooks reference libraries (secret, id, timestamp, body and signature).
    assert signature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                     b'{"test": 2432232314}') == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_each_delivery_gets_its_own_id_and_a_signature_over_its_body() -> None:
    secret = new_secret()
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    first, second = sign(secret, b"{}"), sign(secret, b"{}")
    assert first["webhook-id"] != second["webhook-id"]
    assert first["webhook-signature"] == signature(secret, first["webhook-id"], int(first["webhook-timestamp"]),
                                                   b"{}")
    assert first["webhook-signature"] != signature(secret, first["webhook-id"], int(first["webhook-timestamp"]),
                                                   b"{ }")
