"""Send e-mails over a small pool of persistent SMTP connections (aiosmtplib).

One aiosmtplib connection cannot carry two transactions at once, so each send
borrows a connection from the pool; a connection that failed is closed and
re-opened on its next use. Replies are classified once, here: 5xx for a message
is permanent, everything else (4xx, refused or dropped connections, timeouts)
is transient. One call is one attempt: when to try again is the outbox's
business (the dispatcher lets the entry go until its backoff has passed).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time

import aiosmtplib

from consumers.deliver.message import OutgoingEmail
from consumers.exceptions import SmtpPermanentError, SmtpTransientError, SmtpUnavailable
from ordernotify.config import Settings
from ordernotify.errors import ConfigError, DependencyUnreachable

log = logging.getLogger(__name__)


class SmtpSender:
    def __init__(
        self,
        settings: Settings,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self._settings = settings
        self._tls_context = tls_context or self._configured_tls_context()
        self._idle: asyncio.LifoQueue[aiosmtplib.SMTP] = asyncio.LifoQueue()
        for _ in range(settings.smtp_connections):
            self._idle.put_nowait(self._new_client())

    def _configured_tls_context(self) -> ssl.SSLContext | None:
        """``--smtp-ca-file`` set: verify the server against that bundle (hostname included), else the system's."""
        if self._settings.smtp_tls == "none" or not self._settings.smtp_ca_file:
            return None  # aiosmtplib builds a default context: system CAs, hostname checked
        try:
            return ssl.create_default_context(cafile=self._settings.smtp_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"--smtp-ca-file: cannot load {self._settings.smtp_ca_file}: {exc}") from exc

    def _new_client(self) -> aiosmtplib.SMTP:
        s = self._settings
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            timeout=s.smtp_timeout_s,
            use_tls=s.smtp_tls == "implicit",
            start_tls=s.smtp_tls == "starttls",  # True: required, never a plaintext fallback; False: never tried
            tls_context=self._tls_context,
        )

    async def send_once(self, mail: OutgoingEmail) -> None:
        client = await self._idle.get()
        try:
            await self._ensure_connected(client)
            await client.sendmail(mail.sender, [mail.recipient], mail.data)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refusal = exc.recipients[0] if exc.recipients else None
            code = refusal.code if refusal else 550
            text = f"{code} {refusal.message if refusal else 'recipient refused'}"
            raise (SmtpPermanentError(text) if code >= 500 else SmtpTransientError(text)) from exc
        except (
            TimeoutError,
            aiosmtplib.SMTPServerDisconnected,
            aiosmtplib.SMTPConnectError,
            aiosmtplib.SMTPTimeoutError,
            OSError,
        ) as exc:
            client.close()
            raise SmtpUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            text = f"{exc.code} {exc.message}"
            session = isinstance(exc, (aiosmtplib.SMTPHeloError, aiosmtplib.SMTPAuthenticationError))
            if exc.code >= 500 and not session:
                raise SmtpPermanentError(text) from exc
            client.close()
            # 421 and a refused greeting or login concern the connection; other 4xx replies, this message.
            raise (SmtpUnavailable(text) if session or exc.code == 421 else SmtpTransientError(text)) from exc
        except aiosmtplib.SMTPException as exc:
            client.close()
            raise SmtpUnavailable(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._idle.put_nowait(client)

    async def _ensure_connected(self, client: aiosmtplib.SMTP) -> None:
        if client.is_connected:
            return
        await client.connect()
        if self._settings.smtp_username:
            await client.login(self._settings.smtp_username, self._settings.smtp_password.reveal())

    async def check_reachable(self) -> None:
        """Connect (TLS and login included) once, at start: a server that is not there at all is a setting to
        fix, told as :class:`DependencyUnreachable`; outages after the start are waited for by the outbox."""
        client, started = self._new_client(), time.monotonic()
        try:
            await self._ensure_connected(client)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            reason = str(exc).split("\n")[0] or type(exc).__name__
            raise DependencyUnreachable(
                "the SMTP server", f"{self._settings.smtp_host}:{self._settings.smtp_port}",
                time.monotonic() - started, "--smtp-host and --smtp-port", reason) from exc
        finally:
            if client.is_connected:
                try:
                    await client.quit()
                except (TimeoutError, aiosmtplib.SMTPException, OSError):
                    client.close()

    async def close(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client.is_connected:
                try:
                    await client.quit()
                except (TimeoutError, aiosmtplib.SMTPException, OSError):
                    client.close()
