"""The webhook application served on loopback, a signing key and certificate of our own standing in for SNS's,
served by a second local HTTP server (allowed by --sns-cert-test-hosts), and the documented sample payloads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from consumers.deliver.verp import VerpToken
from feedback.classify import Feedback
from feedback.sns_signature import canonical_string
from feedback.webhooks import webhook_app
from ordernotify.config import Secret, Settings
from ordernotify.metrics import Metrics

FIXTURES = Path(__file__).parent / "fixtures"
TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-feedback"
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
NOW = 1_790_000_000.0  # the tests' clock (Unix seconds)


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return loaded


@dataclass(frozen=True)
class SnsSigner:
    """Signs SNS messages as SNS does, with our own key; its certificate is at ``cert_url``."""

    key: rsa.RSAPrivateKey
    cert_url: str

    def sign(self, message: dict[str, Any], version: str = "2") -> dict[str, Any]:
        signed = {**message, "SignatureVersion": version, "SigningCertURL": self.cert_url}
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(canonical_string(signed), padding.PKCS1v15(), algorithm)
        return {**signed, "Signature": base64.b64encode(signature).decode()}

    def notification(self, ses_notification: dict[str, Any], version: str = "2", **fields: Any) -> dict[str, Any]:
        envelope = fixture("sns_notification.json")
        envelope.update(TopicArn=TOPIC, Message=json.dumps(ses_notification), **fields)
        return self.sign(envelope, version)


def mailgun_signed(payload: dict[str, Any], timestamp: float = NOW, token: str = "", key: str = MAILGUN_KEY
                   ) -> dict[str, Any]:
    """The payload with a fresh ``signature`` object, as Mailgun makes it."""
    token = token or hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:50]
    stamp = str(int(timestamp))
    digest = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return {**payload, "signature": {"timestamp": stamp, "token": token, "signature": digest}}


def _self_signed(key: rsa.RSAPrivateKey, valid_from: datetime, valid_until: datetime) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test.example")])
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(valid_from)
                   .not_valid_after(valid_until).sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="session")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class CertServer:
    """A local HTTP server standing in for sns.REGION.amazonaws.com: certificates and the subscribe URL."""

    host: str
    fetched: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"


@pytest.fixture
async def cert_server(signing_key: rsa.RSAPrivateKey) -> AsyncIterator[CertServer]:
    now = datetime.now(UTC)
    pems = {"/SimpleNotificationService-test.pem": _self_signed(signing_key, now - timedelta(days=1),
                                                                 now + timedelta(days=30)),
            "/SimpleNotificationService-expired.pem": _self_signed(signing_key, now - timedelta(days=30),
                                                                    now - timedelta(days=1))}
    server = TestServer(web.Application(), host="127.0.0.1")
    state = CertServer(host="")

    async def serve(request: web.Request) -> web.Response:
        state.fetched.append(request.path)
        if request.path in pems:
            return web.Response(body=pems[request.path], content_type="application/x-pem-file")
        if request.path == "/confirm":
            return web.Response(text="<ConfirmSubscriptionResponse/>")
        raise web.HTTPNotFound()

    server.app.router.add_get("/{tail:.*}", serve)
    await server.start_server()
    state.host = f"127.0.0.1:{server.port}"
    yield state
    await server.close()


@pytest.fixture
def settings(cert_server: CertServer) -> Settings:
    return Settings(
        ses_sns_topic_arns=TOPIC, sns_cert_test_hosts=cert_server.host,
        postmark_webhook_user="postmark", postmark_webhook_password=Secret("pm-webhook-password"),
        mailgun_signing_key=Secret(MAILGUN_KEY), mailgun_replay_window_s=300.0,
        bounce_domain="bounces.shop.example", verp_secret=Secret("a-verp-secret-for-tests"),
        webhook_max_body_bytes=64 * 1024,
    )


@pytest.fixture
def signer(signing_key: rsa.RSAPrivateKey, cert_server: CertServer) -> SnsSigner:
    return SnsSigner(signing_key, cert_server.url("/SimpleNotificationService-test.pem"))


@dataclass
class Hooks:
    """The webhook application on a loopback port, what reached ``on_feedback`` and the metrics."""

    client: TestClient[web.Request, web.Application]
    received: list[tuple[Feedback, VerpToken | None]]
    metrics: Metrics

    def rejected(self, reason: str) -> float:
        return self.metrics.registry.get_sample_value("ordernotify_feedback_rejected_total", {"reason": reason}) or 0

    def counted(self, kind: str, source: str) -> float:
        return self.metrics.registry.get_sample_value(
            "ordernotify_feedback_total", {"kind": kind, "source": source}) or 0


async def start_hooks(settings: Settings) -> Hooks:
    received: list[tuple[Feedback, VerpToken | None]] = []

    async def on_feedback(feedback: Feedback, token: VerpToken | None) -> None:
        received.append((feedback, token))

    metrics = Metrics()
    client = TestClient(TestServer(webhook_app(settings, on_feedback, metrics=metrics, clock=lambda: NOW),
                                   host="127.0.0.1"))
    await client.start_server()
    return Hooks(client, received, metrics)


@pytest.fixture
async def hooks(settings: Settings) -> AsyncIterator[Hooks]:
    started = await start_hooks(settings)
    yield started
    await started.client.close()


def with_settings(settings: Settings, **changes: Any) -> Settings:
    return replace(settings, **changes)
