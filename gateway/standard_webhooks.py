"""The Standard Webhooks signature scheme (https://www.standardwebhooks.com), which signs ``POST /v1/events``.

A sender signs ``"{webhook-id}.{webhook-timestamp}.{body}"`` with HMAC-SHA256 under the key of a ``whsec_<base64>``
secret and sends ``webhook-signature: v1,<base64 digest>``; while a secret is being rotated it sends one signature per
secret, space-separated. A request is taken when any ``v1`` signature matches any configured secret (compared in
constant time) and its timestamp lies within the replay window of now, either way (clocks drift). The same
``webhook-id`` sent again is a retry of the same delivery: the gateway publishes it again with the same event id,
and the consumers drop the copy.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gateway.exceptions import BadSignature
from ordernotify.config import gateway_secret_keys

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
VERSION = "v1"


@dataclass(frozen=True, slots=True)
class SignedDelivery:
    """Who sent what when, once the signature is verified."""

    webhook_id: str
    timestamp: int


def signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of one delivery: what a sender puts in ``webhook-signature``."""
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(digest).decode('ascii')}"


class StandardWebhooksVerifier:
    """Checks ``webhook-*`` headers against the secrets of ``--gateway-webhook-secrets``."""

    def __init__(self, keys: Sequence[bytes], replay_window_s: float, clock: Callable[[], float] = time.time) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._keys = tuple(keys)
        self._window_s = replay_window_s
        self._clock = clock

    @classmethod
    def from_secrets(cls, secrets: str, replay_window_s: float,
                     clock: Callable[[], float] = time.time) -> StandardWebhooksVerifier | None:
        """From the setting's text (``whsec_...`` secrets, space-separated); None when it is empty."""
        keys = gateway_secret_keys(secrets)
        return cls(keys, replay_window_s, clock) if keys else None

    def verify(self, headers: Mapping[str, str], body: bytes) -> SignedDelivery:
        """The delivery, or :class:`BadSignature` saying what is missing or wrong (never which secret is held)."""
        webhook_id = headers.get(ID_HEADER, "")
        stamp = headers.get(TIMESTAMP_HEADER, "")
        offered = headers.get(SIGNATURE_HEADER, "")
        missing = [name for name, value in ((ID_HEADER, webhook_id), (TIMESTAMP_HEADER, stamp),
                                            (SIGNATURE_HEADER, offered)) if not value]
        if missing:
            raise BadSignature(f"missing {', '.join(missing)} header: sign requests the Standard Webhooks way")
        try:
            timestamp = int(stamp)
        except ValueError:
            raise BadSignature(f"{TIMESTAMP_HEADER} is not whole seconds since 1970") from None
        age = self._clock() - timestamp
        if abs(age) > self._window_s:
            when = f"{age:.0f} s ago" if age > 0 else f"{-age:.0f} s ahead"
            raise BadSignature(f"{TIMESTAMP_HEADER} is {when}, outside the {self._window_s:g} s replay window: "
                               "send it again freshly signed (or check the sender's clock)")
        if not self._matches(webhook_id, timestamp, body, offered):
            raise BadSignature(f"no {VERSION} signature in {SIGNATURE_HEADER} matches: is the secret the one this "
                               "gateway holds?")
        return SignedDelivery(webhook_id, timestamp)

    def _matches(self, webhook_id: str, timestamp: int, body: bytes, offered: str) -> bool:
        signed = f"{webhook_id}.{timestamp}.".encode() + body
        expected = [hmac.new(key, signed, hashlib.sha256).digest() for key in self._keys]
        matched = False
        for entry in offered.split():
            version, _, encoded = entry.partition(",")
            if version != VERSION:
                continue
            try:
                digest = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                continue
            for candidate in expected:  # every pair is compared: how long it takes says nothing of which matched
                matched |= hmac.compare_digest(digest, candidate)
        return matched
