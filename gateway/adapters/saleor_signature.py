"""Saleor's ``Saleor-Signature``: a JWS with detached payload (RFC 7515 appendix F, RS256), checked against the
keys of the shop's JWKS (``--saleor-jwks-url``, usually ``https://SHOP/.well-known/jwks.json``).

Written here on ``cryptography`` (already a dependency) rather than with PyJWT: it is one algorithm (RS256,
pinned: the header's ``alg`` is never trusted to choose), the detached payload with ``b64: false`` (RFC 7797)
that Saleor uses, and the JWKS cache; about 60 lines, and no new dependency to pin and follow.

The keys are cached for ``--saleor-jwks-cache-s``; a ``kid`` not in the cache fetches them again (Saleor rotated
its key), at most once every ``REFETCH_MIN_S`` so that forged ``kid`` values cannot make us hammer the shop.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.adapters.base import PlatformRefused

log = logging.getLogger(__name__)
REFETCH_MIN_S = 30.0
FETCH_TIMEOUT_S = 2.0  # well inside the platform's answer timeout


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def bad_signature(problem: str) -> PlatformRefused:
    return PlatformRefused(401, "bad_signature", f"Saleor-Signature {problem}")


class JwksKeys:
    """The shop's RSA public keys by ``kid``, fetched from its JWKS URL and cached."""

    def __init__(self, url: str, cache_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._url, self._cache_s, self._clock = url, cache_s, clock
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def key(self, kid: str) -> rsa.RSAPublicKey | None:
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self._cache_s
            unknown = kid not in self._keys and (self._fetched_at is None or now - self._fetched_at >= REFETCH_MIN_S)
            if stale or unknown:
                self._keys, self._fetched_at = self._fetch(), now
            return self._keys.get(kid)

    def _fetch(self) -> dict[str, rsa.RSAPublicKey]:
        try:
            with urllib.request.urlopen(self._url, timeout=FETCH_TIMEOUT_S) as answer:  # noqa: S310 - configured URL
                document: Any = json.loads(answer.read(1024 * 1024))
        except (OSError, ValueError) as exc:
            log.warning("cannot fetch Saleor's signing keys from %s: %s", self._url, exc)
            raise PlatformRefused(503, "keys_unavailable",
                                  f"Saleor's signing keys could not be fetched from {self._url}; try again") from exc
        keys: dict[str, rsa.RSAPublicKey] = {}
        for jwk in document.get("keys", []) if isinstance(document, dict) else []:
            if isinstance(jwk, dict) and jwk.get("kty") == "RSA" and jwk.get("n") and jwk.get("e"):
                numbers = rsa.RSAPublicNumbers(int.from_bytes(_b64url(jwk["e"]), "big"),
                                               int.from_bytes(_b64url(jwk["n"]), "big"))
                keys[str(jwk.get("kid", ""))] = numbers.public_key()
        return keys


def verify_detached_jws(signature: str, body: bytes, keys: JwksKeys) -> None:
    """Return if ``signature`` (``header..signature``) signs ``body`` with one of the shop's keys, RS256."""
    parts = signature.strip().split(".")
    if len(parts) != 3 or parts[1]:
        raise bad_signature("is not a JWS with a detached payload (HEADER..SIGNATURE)")
    try:
        protected = json.loads(_b64url(parts[0]))
        signed = _b64url(parts[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_signature("cannot be read") from exc
    if not isinstance(protected, dict) or protected.get("alg") != "RS256":
        raise bad_signature("is not RS256")
    unencoded = protected.get("b64") is False
    if unencoded and "b64" not in (protected.get("crit") or []):
        raise bad_signature("sets b64 without naming it critical (RFC 7797)")
    key = keys.key(str(protected.get("kid", "")))
    if key is None:
        raise bad_signature("names a key the shop's JWKS does not have")
    payload = body if unencoded else base64.urlsafe_b64encode(body).rstrip(b"=")
    try:
        key.verify(signed, parts[0].encode("ascii") + b"." + payload, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise bad_signature("does not match the body") from exc
