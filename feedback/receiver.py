"""The bounce receiver: an LMTP (or SMTP) server the MTA in front hands the bounce domain's mail to.

Replies, and why:

- 250 for every message taken, also a forged one or one naming another recipient than its token: such
  a message is logged and counted, and nothing is applied. A refusal would tell a prober which tokens pass,
  and the MTA would turn each refusal into a double bounce for its postmaster.
- 451 4.3.0 when the suppression or dead-letter topic did not take it: the MTA keeps it and tries again.
- 552 for a message over ``--bounce-max-bytes``: aiosmtpd stops keeping its lines once over the limit and
  reads the rest away, so a 10 MB bounce never sits in memory. The MTA returns it to its postmaster.
- 452 4.5.3 for a second recipient in one transaction: LMTP answers once per recipient after DATA, and
  each bounce has one (its VERP address); the MTA sends further recipients in a new transaction.

Messages are taken one at a time (the suppression list is one in-memory map): a flood of bounces for one
address queues in the MTA, each a count on the list, and memory stays bounded by the open connections.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from consumers.deliver.verp import VerpToken
from feedback.classify import Feedback
from feedback.exceptions import FeedbackNotRecorded
from feedback.intake import FeedbackIntake
from ordernotify.config import Settings
from ordernotify.metrics import Metrics

log = logging.getLogger(__name__)

OK = "250 2.0.0 OK"
TRY_LATER = "451 4.3.0 not recorded, try again later"
ONE_RECIPIENT = "452 4.5.3 one recipient per transaction"


class BounceHandler:
    """aiosmtpd's handler: one recipient per transaction, each message through the intake in a thread."""

    def __init__(self, intake: FeedbackIntake) -> None:
        self._intake = intake
        self._one_at_a_time = asyncio.Lock()

    async def take_feedback(self, feedback: Feedback, token: VerpToken | None) -> None:
        """The webhooks' road in: the same intake, in turn with the messages."""
        async with self._one_at_a_time:
            await asyncio.to_thread(self._intake.take, feedback, token)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if envelope.rcpt_tos:
            return ONE_RECIPIENT
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        async with self._one_at_a_time:
            try:
                await asyncio.to_thread(self._intake.take_message, envelope.rcpt_tos[0], raw)
            except FeedbackNotRecorded as exc:
                log.error("%s; the MTA is asked to try again", exc)
                return TRY_LATER
        return OK


def _counting_refusals(base: type[SMTP], metrics: Metrics) -> type[SMTP]:
    """The protocol class, counting the size refusals aiosmtpd makes before the handler sees a message."""

    class Counting(base):  # type: ignore[valid-type,misc]
        async def push(self, status: Any) -> None:
            text = status.decode() if isinstance(status, bytes) else str(status)
            if text.startswith("552"):
                metrics.count_feedback_rejected("too_large")
                log.warning("refused a bounce over --bounce-max-bytes (%d bytes)", self.data_size_limit)
            await super().push(status)

    return Counting


class BounceReceiver:
    """Listens on ``--bounces-host``/``--bounces-port`` (``port=0``: a free one, see :attr:`port`)."""

    def __init__(self, settings: Settings, intake: FeedbackIntake, metrics: Metrics) -> None:
        self._settings = settings
        self._handler = BounceHandler(intake)
        self._protocol = _counting_refusals(LMTP if settings.bounces_protocol == "lmtp" else SMTP, metrics)
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        s = self._settings
        self._server = await loop.create_server(
            lambda: self._protocol(self._handler, data_size_limit=s.bounce_max_bytes, decode_data=False,
                                   hostname="ordernotify-bounces", ident="ordernotify bounces"),
            s.bounces_host, s.bounces_port)
        log.info("taking bounces over %s on %s:%d", s.bounces_protocol.upper(), s.bounces_host, self.port)

    @property
    def handler(self) -> BounceHandler:
        return self._handler

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the bounce receiver is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
