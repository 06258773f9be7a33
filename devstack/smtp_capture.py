"""A real SMTP server (aiosmtpd) that keeps what it receives: in memory, and as ``.eml`` files.

The demo writes every message into ``./outbox/`` as it arrives (and, at its end, the pages of
:mod:`devstack.outbox_pages`); tests read :attr:`SmtpCapture.messages`.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from devstack.ports import free_port


@dataclass(frozen=True)
class CapturedMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def body(self, subtype: str) -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        return "" if part is None else str(part.get_content())


DROP_AFTER_DATA = "DROP"  # a scripted reply: keep the message, then drop the connection before replying


class _Handler:
    def __init__(self, capture: SmtpCapture) -> None:
        self._capture = capture

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self._capture.reply_for(envelope)
        if self._capture.delay_s:
            await asyncio.sleep(self._capture.delay_s)
        if reply == DROP_AFTER_DATA:  # the server has the message; the client never hears "250"
            self._capture.add(CapturedMessage(str(envelope.mail_from), tuple(envelope.rcpt_tos),
                                              envelope.original_content or b""))
            assert server.transport is not None
            server.transport.close()
            return "421 connection dropped"
        if reply.startswith("250"):
            content = envelope.original_content or b""
            self._capture.add(CapturedMessage(str(envelope.mail_from), tuple(envelope.rcpt_tos), content))
        return reply


class SmtpCapture:
    """aiosmtpd on a free loopback port. ``outbox`` set: every message also lands there as ``.eml``."""

    def __init__(self, port: int | None = None, outbox: Path | None = None, **controller_options: Any) -> None:
        self.port = port or free_port()
        self.outbox = outbox
        self.messages: list[CapturedMessage] = []
        self._lock = threading.Condition()
        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, decode_data=False, **controller_options
        )
        self.replies: list[str] = []  # scripted replies for fault tests; "250 OK" once empty
        self.delay_s = 0.0  # a slow server: seconds before each DATA reply

    def reply_for(self, envelope: Envelope) -> str:
        with self._lock:
            return self.replies.pop(0) if self.replies else "250 OK"

    def add(self, message: CapturedMessage) -> None:
        with self._lock:
            self.messages.append(message)
            number = len(self.messages)
            self._lock.notify_all()
        if self.outbox is not None:
            self._write(number, message)

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[CapturedMessage]:
        """Wait until at least ``count`` messages arrived; returns them all (raises on timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.messages)} of {count} e-mails arrived within {timeout_s} s")
                self._lock.wait(left)
            return list(self.messages)

    def start(self) -> SmtpCapture:
        if self.outbox is not None:
            self.outbox.mkdir(parents=True, exist_ok=True)
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpCapture:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _write(self, number: int, message: CapturedMessage) -> None:
        assert self.outbox is not None
        (self.outbox / f"{number:05d}.eml").write_bytes(message.data)
