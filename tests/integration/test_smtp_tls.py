"""SMTP over TLS against a real aiosmtpd with a self-signed certificate made at test time (openssl CLI).

Implicit TLS (SMTPS) and required STARTTLS, both with AUTH; a server without STARTTLS, a STARTTLS
handshake the client cannot trust, and a server that accepts TCP but never greets: each fails within
the SMTP timeout and nothing is ever delivered in plaintext. A wrong password fails and is never logged.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from consumers.deliver.message import OutgoingEmail
from consumers.deliver.smtp_sender import SmtpSender
from consumers.exceptions import SmtpError, SmtpTransientError
from devstack.smtp_capture import SmtpCapture
from ordernotify.config import Secret, Settings, load_settings
from ordernotify.errors import ConfigError

pytestmark = [
    pytest.mark.integration,
    # the implicit-TLS server: aiosmtpd cannot see that the socket is already TLS
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

USER = "shop"
PASSWORD = "s3cret-Pa55word-never-logged"
MAIL = OutgoingEmail(
    message_id="<tls-1@shop.example>", sender="orders@shop.example", recipient="ada@example.org",
    data=b"Message-ID: <tls-1@shop.example>\r\nFrom: orders@shop.example\r\nTo: ada@example.org\r\n"
         b"Subject: TLS\r\n\r\nover TLS\r\n",
)


@dataclasses.dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, valid for a day: its own CA."""
    openssl = shutil.which("openssl")
    if openssl is None:  # pragma: no cover - Debian and the CI image have it
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
         "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,digitalSignature,keyEncipherment"],
        check=True, capture_output=True, timeout=60,
    )
    return Certificate(cert, key)


def _authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def starttls_server(certificate: Certificate) -> Iterator[SmtpCapture]:
    """STARTTLS required before anything else; AUTH only over TLS and required."""
    with SmtpCapture(tls_context=certificate.server_context(), require_starttls=True, authenticator=_authenticator,
                     auth_required=True, auth_require_tls=True) as server:
        yield server


@pytest.fixture
def implicit_tls_server(certificate: Certificate) -> Iterator[SmtpCapture]:
    """SMTPS: TLS from the first byte (aiosmtpd cannot tell, so AUTH is not tied to STARTTLS)."""
    with SmtpCapture(ssl_context=certificate.server_context(), authenticator=_authenticator, auth_required=True,
                     auth_require_tls=False) as server:
        yield server


@pytest.fixture
def plaintext_server() -> Iterator[SmtpCapture]:
    """No STARTTLS at all (and AUTH allowed in clear, so that only our client can refuse to send)."""
    with SmtpCapture(authenticator=_authenticator, auth_require_tls=False) as server:
        yield server


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections (the kernel completes the handshake) and never says a word."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def _settings(port: int, tls: str, certificate: Certificate | None, password: str = PASSWORD,
              **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_tls": tls, "smtp_username": USER,
        "smtp_password": Secret(password), "smtp_ca_file": str(certificate.cert) if certificate else "",
        "smtp_timeout_s": 2.0, "smtp_connections": 1, "smtp_retry_budget_s": 0.0,
    }
    return dataclasses.replace(Settings(), **{**values, **changes})


async def _send_once(settings: Settings, **options: Any) -> None:
    sender = SmtpSender(settings, **options)
    try:
        await sender.send_once(MAIL)
    finally:
        await sender.close()


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
async def test_mail_goes_over_tls_with_auth_verified_against_the_configured_ca(
    mode: str, certificate: Certificate, request: pytest.FixtureRequest
) -> None:
    server: SmtpCapture = request.getfixturevalue(f"{mode if mode == 'starttls' else 'implicit_tls'}_server")
    await _send_once(_settings(server.port, mode, certificate))
    (message,) = server.wait_for(1, timeout_s=5)
    assert message.rcpt_tos == ("ada@example.org",)
    assert message.message["Subject"] == "TLS"


def test_smtp_ca_file_is_a_setting_with_flag_environment_and_a_clear_error(tmp_path: Path) -> None:
    loaded = load_settings(environ={"ORDERNOTIFY_SMTP_CA_FILE": "/etc/ssl/shop-ca.pem",
                                    "ORDERNOTIFY_SMTP_TLS": "starttls"})
    assert loaded.smtp_ca_file == "/etc/ssl/shop-ca.pem"
    with pytest.raises(ConfigError, match="--smtp-ca-file"):
        SmtpSender(_settings(25, "starttls", None, smtp_ca_file=str(tmp_path / "missing.pem")))


async def test_required_starttls_against_a_server_without_it_fails_and_sends_nothing_in_clear(
    plaintext_server: SmtpCapture,
) -> None:
    for _ in range(3):  # every attempt fails the same way: no fallback to plaintext on a retry
        with pytest.raises(SmtpTransientError, match="STARTTLS"):
            await _send_once(_settings(plaintext_server.port, "starttls", None))
    await asyncio.sleep(0.2)
    assert plaintext_server.messages == []


async def test_a_starttls_handshake_the_client_cannot_trust_fails_and_sends_nothing(
    starttls_server: SmtpCapture,
) -> None:
    """No CA configured: the system CAs do not know the self-signed certificate, so TLS fails; no fallback."""
    with pytest.raises(SmtpTransientError) as failed:
        await _send_once(_settings(starttls_server.port, "starttls", None))
    assert isinstance(failed.value.__cause__, (ssl.SSLError, OSError)) or "certificate" in str(failed.value).lower()
    await asyncio.sleep(0.2)
    assert starttls_server.messages == []


async def test_implicit_tls_against_a_plaintext_server_fails(plaintext_server: SmtpCapture,
                                                            certificate: Certificate) -> None:
    with pytest.raises(SmtpTransientError):
        await _send_once(_settings(plaintext_server.port, "implicit", certificate))
    assert plaintext_server.messages == []


@pytest.mark.parametrize("mode", ["none", "starttls", "implicit"])
async def test_a_server_that_never_greets_fails_within_the_smtp_timeout(
    mode: str, silent_server: int, certificate: Certificate
) -> None:
    settings = _settings(silent_server, mode, certificate, smtp_username="" if mode == "none" else USER)
    started = time.monotonic()
    with pytest.raises(SmtpTransientError):
        await _send_once(settings)
    elapsed = time.monotonic() - started
    assert elapsed < 5.0, f"took {elapsed:.1f} s with smtp_timeout_s=2"


async def test_a_wrong_password_fails_and_never_shows_up_in_the_logs(
    starttls_server: SmtpCapture, certificate: Certificate, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "Wr0ng-and-secret-pa55"
    caplog.set_level(logging.DEBUG)  # aiosmtplib and aiosmtpd included
    settings = _settings(starttls_server.port, "starttls", certificate, password=wrong)
    sender = SmtpSender(settings)
    try:
        with pytest.raises(SmtpError) as failed:
            await sender.send_once(MAIL)
    finally:
        await sender.close()
    assert starttls_server.messages == []
    assert "535" in str(failed.value)
    logged = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records) + str(failed.value)
    encodings = {wrong, base64.b64encode(wrong.encode()).decode(),
                 base64.b64encode(f"\0{USER}\0{wrong}".encode()).decode()}
    for secret in encodings:
        assert secret not in logged
    assert wrong not in repr(settings) and wrong not in str(settings.masked())

