"""Signed bounce addresses (VERP): each e-mail's envelope sender names the e-mail, so a bounce names it too.

A bounce goes to the envelope sender (MAIL FROM, which the receiving server writes as Return-Path), not to the
From: address the customer sees. Giving each e-mail its own envelope sender, ``LOCAL+TOKEN@BOUNCE-DOMAIN``, makes
every bounce name the e-mail it is about, even when the bounce itself is unreadable or names another address.

The token is 30 bytes in base32 (48 characters, lower case): the notification id (16 bytes), the first 5 bytes of
the recipient's :func:`address_digest` (so a bounce naming another recipient can be told apart, without putting an
address into the token) and 9 bytes of HMAC-SHA256 over both with ``verp_secret``. Forging one means guessing 72
bits per try, each try a mail to our bounce server. Base32 because mail servers may change the case of a local
part: the token reads the same in any case. The address is deterministic, so a resend of the same e-mail carries
the same one (the outbox stores it with the message bytes anyway).

Rotating the secret: new addresses are signed with ``verp_secret`` only, and a returning token is accepted if
it was signed with it or with one of ``verp_previous_secrets``, so that bounces of e-mails sent before the
rotation are still attributed. Every key is tried, each with a constant-time comparison, whichever matches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

from consumers.exceptions import ForgedBounce
from ordernotify.config import Settings, verp_previous_keys
from ordernotify.errors import ConfigError

_CONTEXT = b"ordernotify-verp-1\0"  # domain separation: the secret signs nothing else in this form
_ID_BYTES, _PREFIX_BYTES, _MAC_BYTES = 16, 5, 9
TOKEN_CHARS = (_ID_BYTES + _PREFIX_BYTES + _MAC_BYTES) * 8 // 5  # 48, no base32 padding
DELIMITER = "+"
MAX_LOCAL_PART = 64  # RFC 5321 4.5.3.1.1
_NOTIFICATION_ID = re.compile(r"[0-9a-fA-F]{32}")


def address_digest(address: str) -> str:
    """The suppression key of an address everywhere: sha256 (hex) of it stripped and lower-cased."""
    return hashlib.sha256(address.strip().lower().encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class VerpToken:
    """What a bounce address says: which e-mail, and the first 10 hex digits of its recipient's digest."""

    notification_id: str  # 32 hex
    digest_prefix: str  # first 10 hex of address_digest(recipient)


def envelope_sender(notification_id: str, recipient: str, settings: Settings) -> str:
    """The MAIL FROM of one e-mail: ``LOCAL+TOKEN@DOMAIN``; ``settings.sender_address`` when VERP is off."""
    if not settings.bounce_domain:
        return settings.sender_address
    if not _NOTIFICATION_ID.fullmatch(notification_id):
        raise ValueError(f"notification id {notification_id!r} is not {_ID_BYTES * 2} hex digits")
    payload = bytes.fromhex(notification_id) + bytes.fromhex(address_digest(recipient)[:_PREFIX_BYTES * 2])
    token = base64.b32encode(payload + _mac(payload, settings)).decode("ascii").lower()
    local = f"{settings.bounce_local_part}{DELIMITER}{token}"
    if len(local) > MAX_LOCAL_PART:
        raise ConfigError(f"--bounce-local-part {settings.bounce_local_part!r} is too long for a bounce address")
    return f"{local}@{settings.bounce_domain}"


def read_token(address: str, settings: Settings) -> VerpToken:
    """The token of the address a bounce was sent to; :class:`ForgedBounce` if it is not one of ours.

    Accepts what a mail server hands over as the envelope recipient: in angle brackets or not, in any case.
    """
    if not settings.bounce_domain:
        raise ForgedBounce("no bounce domain is set (--bounce-domain): no bounce address can be ours")
    local, at, domain = address.strip().strip("<>").rpartition("@")
    if not at:
        raise ForgedBounce("the bounce address has no domain")
    if domain.rstrip(".").lower() != settings.bounce_domain.rstrip(".").lower():
        raise ForgedBounce(f"the bounce address is not in the bounce domain {settings.bounce_domain}")
    base, delimiter, token = local.rpartition(DELIMITER)
    if not delimiter or not token:
        raise ForgedBounce("the bounce address carries no token")
    if base.lower() != settings.bounce_local_part.lower():
        raise ForgedBounce(f"the bounce address's local part is not {settings.bounce_local_part}+TOKEN")
    if len(token) != TOKEN_CHARS:
        raise ForgedBounce(f"the bounce address's token is {len(token)} characters, not {TOKEN_CHARS}")
    try:
        raw = base64.b32decode(token, casefold=True)
    except (binascii.Error, ValueError):
        raise ForgedBounce("the bounce address's token is not base32") from None
    payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    matched = False
    for key in _keys(settings):  # no early exit: the time taken does not tell which key, if any, matched
        matched |= hmac.compare_digest(mac, _mac_with(key, payload))
    if not matched:
        raise ForgedBounce("the bounce address's token has a bad signature (not made with --verp-secret or "
                           "--verp-previous-secrets)")
    return VerpToken(notification_id=payload[:_ID_BYTES].hex(), digest_prefix=payload[_ID_BYTES:].hex())


def _keys(settings: Settings) -> list[str]:
    """The key that signs, then the earlier ones that still verify."""
    secret = settings.verp_secret.reveal()
    if not secret:
        raise ConfigError("--bounce-domain needs ORDERNOTIFY_VERP_SECRET: it signs the bounce addresses")
    return [secret, *verp_previous_keys(settings)]


def _mac(payload: bytes, settings: Settings) -> bytes:
    return _mac_with(_keys(settings)[0], payload)


def _mac_with(key: str, payload: bytes) -> bytes:
    return hmac.new(key.encode("utf-8"), _CONTEXT + payload, hashlib.sha256).digest()[:_MAC_BYTES]
