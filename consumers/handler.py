"""One consumed record, start to finish: decode, decide, render, send, or dead-letter with a reason.

Whatever the record holds, :meth:`RecordHandler.handle` returns an outcome and
never raises for bad input: the consumer goes on with the next event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from consumers.dead_letters import DeadLetters, SourceRecord
from consumers.exceptions import DeadLetterError, RenderError, SmtpError
from consumers.message import OutgoingEmail, build_message
from consumers.notification import Notification
from consumers.outcomes import DeadLettered, Outcome, Sent
from consumers.rendering import Renderer
from consumers.smtp_sender import SmtpSender
from ordernotify.config import Settings
from schemas.codec import EventCodec
from schemas.events import OrderEvent
from schemas.exceptions import DecodeError

log = logging.getLogger(__name__)

Decide = Callable[[OrderEvent], list[Notification]]


def notify_every_event(event: OrderEvent) -> list[Notification]:
    """The simplest policy: one e-mail per event (the notification policy replaces it)."""
    return [Notification.for_event(event)]


class RecordHandler:
    def __init__(
        self,
        settings: Settings,
        renderer: Renderer,
        sender: SmtpSender,
        dead_letters: DeadLetters,
        decide: Decide = notify_every_event,
        codec: EventCodec | None = None,
    ) -> None:
        self._settings = settings
        self._renderer = renderer
        self._sender = sender
        self._dead_letters = dead_letters
        self._decide = decide
        self._codec = codec or EventCodec()

    async def handle(self, record: SourceRecord) -> list[Outcome]:
        try:
            return await self._handle(record)
        except Exception as exc:  # a bug must cost one dead letter, not the whole stream
            log.exception("unexpected error handling %s[%d]@%d", record.topic, record.partition, record.offset)
            return [await self._dead_letter(record, "internal_error", f"{type(exc).__name__}: {exc}")]

    async def _handle(self, record: SourceRecord) -> list[Outcome]:
        try:
            event = self._codec.decode(record.value or b"")
        except DecodeError as exc:
            return [await self._dead_letter(record, exc.reason, str(exc))]
        outcomes: list[Outcome] = []
        for notification in self._decide(event):
            outcomes.append(await self._deliver(record, notification))
        return outcomes

    async def _deliver(self, record: SourceRecord, notification: Notification) -> Outcome:
        try:
            mail = self.compose(notification)
        except RenderError as exc:
            return await self._dead_letter(record, exc.reason, str(exc))
        try:
            await self._sender.send(mail)
        except SmtpError as exc:
            return await self._dead_letter(record, exc.reason, str(exc))
        log.debug("sent %s (notification %s) for %s[%d]@%d", notification.template.value,
                  notification.notification_id, record.topic, record.partition, record.offset)
        return Sent(mail.message_id, notification.template.value)

    def compose(self, notification: Notification) -> OutgoingEmail:
        rendered = self._renderer.render(notification)
        return build_message(rendered, notification, self._settings)

    async def _dead_letter(self, record: SourceRecord, reason: str, detail: str) -> DeadLettered:
        attempt = 0
        while True:
            try:
                await asyncio.to_thread(self._dead_letters.publish, record, reason, detail)
                return DeadLettered(reason, detail)
            except DeadLetterError as exc:
                attempt += 1
                log.error("dead-letter topic unavailable (attempt %d): %s", attempt, exc)
                await asyncio.sleep(min(30.0, 0.5 * 2**attempt))
