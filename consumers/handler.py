"""One consumed record, start to finish: decode, then let the notification policy decide and send.

Whatever the record holds, :meth:`RecordHandler.handle` returns an outcome and
never raises for bad input: the consumer goes on with the next event. Only
retriable trouble (state store or dead-letter topic unreachable) holds the
record back, retried with backoff, because moving on would lose it.
"""

from __future__ import annotations

import asyncio
import logging

from consumers.dead_letters import DeadLetters, SourceRecord
from consumers.health import ConsumerHealth
from consumers.outcomes import DeadLettered, Outcome
from consumers.policy.notifier import Notifier
from ordernotify.errors import OrderNotifyError
from ordernotify.metrics import DecisionOutcome, Metrics
from schemas.codec import EventCodec
from schemas.exceptions import DecodeError

log = logging.getLogger(__name__)

RETRY_CAP_S = 5.0  # a state store or dead-letter topic check is cheap: come back soon after it does


class RecordHandler:
    def __init__(self, notifier: Notifier, dead_letters: DeadLetters, codec: EventCodec | None = None,
                 metrics: Metrics | None = None, health: ConsumerHealth | None = None,
                 concurrency: int = 4) -> None:
        self._notifier = notifier
        # At most this many records between decode and recorded outcome (--events-in-flight); their
        # e-mails then wait for one of the SMTP pool's connections. The bound covers the decode too: a
        # batch's records wait here undecoded, rather than all being decoded up front in the event loop
        # (~60 ms for 200) while no e-mail is being sent.
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._dead_letters = dead_letters
        self._codec = codec or EventCodec()
        self._metrics = metrics or Metrics()
        self._health = health or ConsumerHealth()

    async def handle(self, record: SourceRecord) -> Outcome:
        async with self._slots:
            return await self._handle_retrying(record)

    async def _handle_retrying(self, record: SourceRecord) -> Outcome:
        attempt = 0
        while True:
            try:
                outcome = await self._handle(record)
                self._health.store_reached()
                return outcome
            except OrderNotifyError as exc:
                if not exc.retriable:
                    return await self._internal_error(record, exc)
                self._health.store_reached(exc)
                attempt += 1
                delay = min(RETRY_CAP_S, 0.5 * 2 ** min(attempt, 10))
                log.warning("record %s[%d]@%d held back (attempt %d, retry in %.1f s): %s",
                            record.topic, record.partition, record.offset, attempt, delay, exc)
                await asyncio.sleep(delay)
            except Exception as exc:  # a bug must cost one dead letter, not the whole stream
                return await self._internal_error(record, exc)

    async def _handle(self, record: SourceRecord) -> Outcome:
        try:
            event = self._codec.decode(record.value or b"")
        except DecodeError as exc:
            self._metrics.decode_failures.labels(reason=exc.reason).inc()
            await self._publish_dead_letter(record, exc.reason, str(exc))
            return DeadLettered(exc.reason, str(exc))
        self._metrics.events_consumed.labels(event_type=event.event_type.value).inc()
        return await self._notifier.on_event(event, record)

    async def _publish_dead_letter(self, record: SourceRecord, reason: str, detail: str) -> None:
        await asyncio.to_thread(self._dead_letters.publish, record, reason, detail)
        self._metrics.count_dead_letter(reason)
        self._metrics.count_decision(DecisionOutcome.DEAD_LETTERED, reason)

    async def _internal_error(self, record: SourceRecord, exc: Exception) -> Outcome:
        log.error("unexpected error handling %s[%d]@%d", record.topic, record.partition, record.offset,
                  exc_info=exc)
        detail = f"{type(exc).__name__}: {exc}"
        await self._publish_dead_letter(record, "internal_error", detail)
        return DeadLettered("internal_error", detail)
