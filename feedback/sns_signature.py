"""Amazon SNS message signatures: is this HTTP POST really from SNS, for a topic we take?

SNS signs a canonical string of the message's fields (each name and value on a line of its own, in a fixed order
per message type) with the key of an X.509 certificate it names in ``SigningCertURL``: SHA1withRSA for
``SignatureVersion`` 1, SHA256withRSA for 2. The certificate is fetched only over https from
``sns.REGION.amazonaws.com`` (``.amazonaws.com.cn`` in China), whose TLS certificate the system's CAs vouch for: a
URL anywhere else is refused before anything is fetched, so a forged message cannot bring its own key. Fetched
certificates are cached by URL (SNS uses one for months). ``--sns-cert-test-hosts`` adds hosts for tests only.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from feedback.exceptions import BadSignature, MalformedWebhook, SigningCertificateUnavailable
from ordernotify.config import Settings

log = logging.getLogger(__name__)

_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
MAX_CERTIFICATE_BYTES = 64 * 1024
MAX_CACHED_CERTIFICATES = 16
FETCH_TIMEOUT_S = 10.0

Fetch = Callable[[str], Awaitable[bytes]]


def canonical_string(message: Mapping[str, Any]) -> bytes:
    """What SNS signed: ``Name\\nvalue\\n`` for each signed field of the message's type, ``Subject`` only if sent."""
    kind = message.get("Type")
    fields = _SIGNED_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise MalformedWebhook(f"SNS message Type {kind!r} is not one of {', '.join(_SIGNED_FIELDS)}")
    lines = []
    for name in fields:
        value = message.get(name)
        if name == "Subject" and value is None:
            continue
        if not isinstance(value, str):
            raise MalformedWebhook(f"SNS {kind} message has no {name}")
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode("utf-8")


def _hosts(setting: str) -> frozenset[str]:
    return frozenset(host.strip().lower() for host in setting.split(",") if host.strip())


class SnsVerifier:
    """Checks SNS messages' signatures and topics; one per webhook application (it holds the certificate cache and
    the HTTP client that fetches certificates and confirms subscriptions)."""

    def __init__(self, settings: Settings, fetch: Fetch | None = None) -> None:
        self.topics = frozenset(arn.strip() for arn in settings.ses_sns_topic_arns.split(",") if arn.strip())
        self._test_hosts = _hosts(settings.sns_cert_test_hosts)
        self._fetch = fetch or self._get
        self._session: aiohttp.ClientSession | None = None
        self._certificates: dict[str, x509.Certificate] = {}

    def check_url(self, url: str, what: str) -> None:
        """Refuse (BadSignature) a certificate or subscribe URL that is not SNS's own (or a listed test host)."""
        try:
            parts = urlsplit(url)
            netloc, host, port = parts.netloc.lower(), (parts.hostname or ""), parts.port
        except ValueError:
            raise BadSignature(f"SNS {what} {url[:100]!r} is not a URL") from None
        if netloc in self._test_hosts and parts.scheme in ("http", "https"):
            return
        if parts.scheme != "https" or not _SNS_HOST.match(host) or port not in (None, 443) or "@" in netloc:
            raise BadSignature(f"SNS {what} is not https://sns.REGION.amazonaws.com/...: {url[:100]!r}")

    async def verify(self, message: Mapping[str, Any], now: datetime | None = None) -> None:
        """Raise BadSignature unless SNS signed ``message`` and it is about one of ``--ses-sns-topic-arns``."""
        signed = canonical_string(message)
        topic = message.get("TopicArn")
        if topic not in self.topics:
            raise BadSignature(f"SNS topic {str(topic)[:200]!r} is not in --ses-sns-topic-arns")
        version = str(message.get("SignatureVersion", ""))
        if version not in _HASHES:
            raise BadSignature(f"SNS SignatureVersion {version!r} is neither 1 nor 2")
        cert_url = message.get("SigningCertURL")
        if not isinstance(cert_url, str):
            raise BadSignature("SNS message has no SigningCertURL")
        self.check_url(cert_url, "SigningCertURL")
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        except (binascii.Error, ValueError):
            raise BadSignature("SNS Signature is not base64") from None
        certificate = await self._certificate(cert_url)
        moment = now or datetime.now(UTC)
        if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
            raise BadSignature(f"SNS signing certificate {cert_url} is not valid now "
                               f"({certificate.not_valid_before_utc:%Y-%m-%d} to "
                               f"{certificate.not_valid_after_utc:%Y-%m-%d})")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise BadSignature(f"SNS signing certificate {cert_url} has no RSA key")
        try:
            key.verify(signature, signed, padding.PKCS1v15(), _HASHES[version]())
        except InvalidSignature:
            raise BadSignature("SNS signature does not match the message") from None

    async def confirm_subscription(self, subscribe_url: str) -> None:
        """Visit the SubscribeURL of a verified SubscriptionConfirmation, as SNS asks."""
        self.check_url(subscribe_url, "SubscribeURL")
        await self._fetch(subscribe_url)

    async def _certificate(self, url: str) -> x509.Certificate:
        cached = self._certificates.get(url)
        if cached is not None:
            return cached
        pem = await self._fetch(url)
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise BadSignature(f"SNS SigningCertURL {url} did not give a PEM certificate") from None
        if len(self._certificates) >= MAX_CACHED_CERTIFICATES:
            self._certificates.pop(next(iter(self._certificates)))
        self._certificates[url] = certificate
        return certificate

    async def _get(self, url: str) -> bytes:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S))
        try:
            async with self._session.get(url, allow_redirects=False) as response:
                response.raise_for_status()
                body = await response.content.read(MAX_CERTIFICATE_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("cannot fetch %s from SNS: %s; SNS will send the message again", url, exc)
            raise SigningCertificateUnavailable(f"cannot fetch {url} now: {exc}") from exc
        if len(body) > MAX_CERTIFICATE_BYTES:
            raise BadSignature(f"{url} answered more than {MAX_CERTIFICATE_BYTES} bytes: not a certificate")
        return body

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
