"""Who sent a webhook: Postmark's basic-auth credentials and Mailgun's signed timestamp and token.

Both compare in constant time (``hmac.compare_digest``), so how long a refusal takes tells nothing about the secret.
Mailgun signs ``timestamp + token`` with HMAC-SHA256 and the webhook signing key; a signature is taken only within
``--mailgun-replay-window-s`` of its timestamp and each token only once in that window, so a captured request
cannot be sent again. The tokens seen are kept in memory: with several bounce services behind one URL, a replay
to another one within the window is not caught (the suppression it could repeat is the same one anyway).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any

from feedback.exceptions import BadSignature, Unauthenticated
from ordernotify.config import Secret

MAX_REMEMBERED_TOKENS = 100_000


def check_basic_auth(header: str | None, user: str, password: Secret) -> None:
    """Raise Unauthenticated unless ``header`` is ``Basic base64(user:password)`` with the configured pair."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise Unauthenticated("no basic-auth credentials: give Postmark the URL https://USER:PASSWORD@HOST/...")
    try:
        given_user, colon, given_password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        raise Unauthenticated("the basic-auth credentials are not base64") from None
    user_ok = hmac.compare_digest(given_user, user.encode("utf-8"))
    password_ok = hmac.compare_digest(given_password, password.reveal().encode("utf-8"))
    if not (colon and user_ok and password_ok):
        raise Unauthenticated("wrong basic-auth credentials for /webhooks/postmark")


class MailgunSignatures:
    """Verifies the ``signature`` object of Mailgun's webhooks and remembers the tokens already taken."""

    def __init__(self, key: Secret, window_s: float, clock: Callable[[], float] = time.time) -> None:
        self._key = key.reveal().encode("utf-8")
        self._window_s = window_s
        self._clock = clock
        self._seen: dict[str, float] = {}  # token -> when it may be forgotten (its timestamp + the window)

    def verify(self, signature: Any) -> None:
        if not isinstance(signature, Mapping):
            raise BadSignature("no signature object: not sent by Mailgun")
        timestamp, token, digest = (signature.get(name) for name in ("timestamp", "token", "signature"))
        if not all(isinstance(value, str | int) for value in (timestamp, token, digest)):
            raise BadSignature("the signature object lacks timestamp, token or signature")
        expected = hmac.new(self._key, f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), str(digest).lower().encode()):
            raise BadSignature("the signature does not match --mailgun-signing-key")
        try:
            signed_at = float(str(timestamp))
        except ValueError:
            raise BadSignature(f"the signed timestamp {str(timestamp)[:20]!r} is not a number") from None
        now = self._clock()
        if abs(now - signed_at) > self._window_s:
            raise BadSignature(f"signed {now - signed_at:.0f} s ago, outside the replay window of "
                               f"{self._window_s:.0f} s (--mailgun-replay-window-s)")
        self._forget_expired(now)
        if str(token) in self._seen:
            raise BadSignature("this signature's token was taken before: a replayed request")
        self._seen[str(token)] = signed_at + self._window_s

    def _forget_expired(self, now: float) -> None:
        if len(self._seen) < MAX_REMEMBERED_TOKENS // 2:
            expired = [token for token, until in list(self._seen.items())[:64] if until < now]
        else:
            expired = [token for token, until in self._seen.items() if until < now]
        for token in expired:
            del self._seen[token]
        while len(self._seen) >= MAX_REMEMBERED_TOKENS:  # only a flood of validly signed requests gets here
            self._seen.pop(next(iter(self._seen)))
