"""The one road to SMTP: claim outbox entries, render them in batches, send, record each outcome.

A loop claims work (entries ``ready``, windows that are due, entries whose holder's lease ran out)
under a lease that a renewer keeps alive while this process holds them. New entries are rendered in
one batch (worker processes) and their exact bytes stored before the first attempt. One worker per
SMTP connection sends and records the outcome right after the server's reply, before it takes the
next e-mail: a crash leaves at most one accepted-but-unrecorded e-mail per connection, which is sent
again with the same bytes and Message-ID (the accepted bound; tests/integration/README.md).

A 4xx for one message lets the entry go until its backoff has passed (the connection serves others
meanwhile); a server that cannot be reached is waited for on the connection, the lease renewed. A
permanent failure, or a retry budget spent, marks the entry failed, and it is released only once its
events' dead letters are acknowledged. An entry is sent only while this process still holds its lease
(see :mod:`consumers.deliver.leases`), and outcomes are written only by the holder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from consumers.comms_log import CommsLog
from consumers.dead_letters import DeadLetters, SourceRecord
from consumers.deliver.composing import Composer, RenderJob
from consumers.deliver.leases import Leases
from consumers.deliver.message import OutgoingEmail
from consumers.deliver.smtp_sender import SmtpSender
from consumers.deliver.suppression_check import ADDRESS_SUPPRESSED, Stopped, stop_suppressed
from consumers.exceptions import (
    SmtpPermanentError,
    SmtpRetriesExhausted,
    SmtpTransientError,
    SmtpUnavailable,
)
from consumers.health import ConsumerHealth
from consumers.policy.rules import facts_of
from consumers.policy.windows import ClosedWindows, close_due_windows
from consumers.state.outbox import ClaimedEntry, Failure, RenderedMail, Status
from consumers.state.store import StateStore
from ordernotify.config import Settings
from ordernotify.metrics import DecisionOutcome, FailureClass, Metrics
from ordernotify.retry import Backoff, retry_async
from schemas.codec import EventCodec
from schemas.exceptions import DecodeError

log = logging.getLogger(__name__)

T = TypeVar("T")

RENDER_CRASHES = 3  # an e-mail on which the render process failed this often is dead-lettered
TICK_S = 0.5  # idle: look for due windows and expired leases this often (new entries wake the loop at once)
HOUSEKEEPING_S = 5.0  # gauges of open windows and outbox backlog
PRUNE_EVERY_S = 600.0


class Dispatcher:
    def __init__(self, settings: Settings, store: StateStore, composer: Composer, sender: SmtpSender,
                 dead_letters: DeadLetters, comms_log: CommsLog, metrics: Metrics | None = None,
                 health: ConsumerHealth | None = None, clock: Callable[[], float] = time.time,
                 backoff: Backoff | None = None, owner: str | None = None) -> None:
        self._settings = settings
        self._store = store
        self._composer = composer
        self._sender = sender
        self._dead_letters = dead_letters
        self._log = comms_log
        self._metrics = metrics or Metrics()
        self._health = health or ConsumerHealth()
        self._clock = clock
        self._backoff = backoff or Backoff(first_s=0.5, cap_s=30.0)
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._codec = EventCodec()
        self._max_held = 2 * settings.outbox_batch
        self._held = Leases(settings.outbox_lease_s)
        self._rendered_here: set[str] = set()  # rendered by this process and not yet tried: safe to render again
        self._render_backoff = 0
        self._sent_waiting: list[tuple[ClaimedEntry, RenderedMail, asyncio.Future[None]]] = []
        self._recording_sent = False
        self._wakeup: asyncio.Event | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()
        # The delivering side's store calls, one after another, off the event loop; outcomes never wait
        # behind a render, since rendering happens elsewhere (the composer).
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self.sent_by_template: Counter[str] = Counter()
        self.not_sent_by_reason: Counter[str] = Counter()

    def wake(self) -> None:
        """New entries are in the outbox (the deciding side just committed them): look now, not at the tick."""
        if self._wakeup is not None:
            self._wakeup.set()

    # -- the loop ------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, shutdown_grace_s: float = 20.0) -> None:
        self._wakeup = asyncio.Event()
        queue, workers = self._start_workers()
        upkeep_stop = asyncio.Event()  # leases are renewed until the shutdown has let everything go
        upkeep = asyncio.create_task(self._upkeep(upkeep_stop))
        ignore_leases = self._store.exclusive  # at start, a store of our own has no live holder but us
        try:
            while not stop.is_set():
                claimed = 0
                if len(self._held) < self._max_held:
                    claimed = await self._claim_and_prepare(queue, ignore_leases)
                    ignore_leases = False
                if claimed == 0 or len(self._held) >= self._max_held:
                    await self._sleep(stop)
        finally:
            try:
                await self._shut_down(queue, workers, shutdown_grace_s)
            finally:
                upkeep_stop.set()
                upkeep.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await upkeep
                await asyncio.get_running_loop().run_in_executor(None, self._db.shutdown, True)

    async def drain(self, ignore_leases: bool = False) -> int:
        """Deliver everything due now, wait until each outcome is recorded, and say how many were sent.

        For tools and tests that step through time; a running consumer uses :meth:`run`."""
        before = sum(self.sent_by_template.values())
        queue, workers = self._start_workers()
        try:
            while True:
                claimed = await self._claim_and_prepare(queue, ignore_leases)
                ignore_leases = False
                await queue.join()
                while self._side_tasks:
                    await asyncio.gather(*self._side_tasks)
                if not claimed:
                    break
        finally:
            for _ in workers:
                queue.put_nowait(None)
            await asyncio.gather(*workers)
        return sum(self.sent_by_template.values()) - before

    def _start_workers(self) -> tuple[asyncio.Queue[ClaimedEntry | None], list[asyncio.Task[None]]]:
        queue: asyncio.Queue[ClaimedEntry | None] = asyncio.Queue()
        workers = [asyncio.create_task(self._connection_worker(queue)) for _ in range(self._settings.smtp_connections)]
        return queue, workers

    async def _sleep(self, stop: asyncio.Event) -> None:
        assert self._wakeup is not None
        waiters = [asyncio.ensure_future(self._wakeup.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waiters, timeout=TICK_S, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        self._wakeup.clear()

    async def _claim_and_prepare(self, queue: asyncio.Queue[ClaimedEntry | None], ignore_leases: bool) -> int:
        limit = min(self._settings.outbox_batch, self._max_held - len(self._held))
        try:
            windows, claimed = await self._in_db(self._claim, limit, ignore_leases)
            self._health.store_reached()
        except Exception as exc:  # the loop must outlive a store outage or a bug
            self._report_store(exc)
            log.warning("claiming outbox work failed, will retry: %s", exc, exc_info=not _retriable(exc))
            await asyncio.sleep(1.0)
            return 0
        self._tell_windows(windows)
        self._held.took((c.entry.notification_id for c in claimed), self._clock())
        self._metrics.in_flight.set(len(self._held))
        to_render = [c for c in claimed if c.status is not Status.FAILED and c.mail is None]
        rendered_before = {c.entry.notification_id for c in await self._not_suppressed(
            [c for c in claimed if c.status is not Status.FAILED and c.mail is not None])}
        for c in claimed:
            if c.status is Status.FAILED and c.failure is not None:
                self._spawn(self._dead_letter(c, c.failure))
            elif c.entry.notification_id in rendered_before:
                if c.attempts:
                    log.info("retrying notification %s (attempt %d)", c.entry.notification_id, c.attempts + 1)
                else:  # rendered and never answered: its claimer stopped mid-send, maybe after the server took it
                    log.warning("re-sending notification %s: its last claimer stopped before recording an outcome",
                                c.entry.notification_id)
                queue.put_nowait(c)
        if to_render:
            for ready in await self._not_suppressed(await self._render(to_render)):
                self._rendered_here.add(ready.entry.notification_id)
                queue.put_nowait(ready)
        return len(claimed)

    def _claim(self, limit: int, ignore_leases: bool) -> tuple[ClosedWindows, list[ClaimedEntry]]:
        now = self._clock()
        with self._store.transaction() as tx:
            windows = close_due_windows(tx, self._settings, self._codec, now, limit)
            claimed = tx.outbox.claim(now, self.owner, now + self._settings.outbox_lease_s, limit, ignore_leases)
        return windows, claimed

    def _tell_windows(self, windows: ClosedWindows) -> None:
        for why in windows.postponed:
            self._metrics.count_decision(DecisionOutcome.THROTTLED, why)
        for not_sent in windows.not_sent:  # counted per event, as the deciding side counts
            self.not_sent_by_reason[not_sent.reason] += len(not_sent.event_ids)
            for _ in not_sent.event_ids:
                self._metrics.count_decision(DecisionOutcome.SUPPRESSED, not_sent.reason)
        for n in windows.not_sent:  # the log publishes from a thread of its own
            self._log.not_sent(order_id=n.order_id, customer_id=n.customer_id, reason=n.reason,
                               event_ids=n.event_ids)

    # -- rendering -------------------------------------------------------------------------------------
    async def _render(self, claimed: list[ClaimedEntry]) -> list[ClaimedEntry]:
        """Render the batch and store each message before its first attempt; failures go to dead letters."""
        jobs = [RenderJob(c.entry.notification_id, c.entry.template, tuple(e.event for e in c.events))
                for c in claimed]
        try:
            results: list[RenderedMail | Failure | None] = list(await self._composer.render(jobs))
            self._render_backoff = 0
        except Exception as exc:  # a render process died (killed, out of memory, a crash in one e-mail)
            log.warning("rendering %d e-mails failed (%s); rendering them one by one", len(jobs), exc)
            results = [await self._render_alone(job) for job in jobs]
        rendered = list(zip(claimed, results, strict=True))
        crashed = [c for c, result in rendered if result is None]
        if crashed:
            await self._render_again_later(crashed)
        stored = await self._record(self._store_rendered, [(c, r) for c, r in rendered if r is not None])
        ready: list[ClaimedEntry] = []
        for c, result in rendered:
            if isinstance(result, RenderedMail):
                if c.entry.notification_id in stored:
                    ready.append(ClaimedEntry(c.entry, Status.SENDING, c.attempts, c.first_tried_at, c.events,
                                              result))
                else:
                    self._let_go(c.entry.notification_id)  # another dispatcher holds it now
            elif isinstance(result, Failure):
                self._metrics.count_email_failed(c.entry.template, FailureClass.RENDER)
                if c.entry.notification_id in stored:
                    self._spawn(self._dead_letter(c, result))
                else:
                    self._let_go(c.entry.notification_id)
        return ready

    async def _render_alone(self, job: RenderJob) -> RenderedMail | Failure | None:
        """One e-mail in a batch of its own; None if the render process died on it (or failed otherwise)."""
        try:
            (result,) = await self._composer.render([job])
            return result
        except Exception as exc:
            log.error("rendering notification %s failed: %s", job.notification_id, exc)
            return None

    async def _render_again_later(self, crashed: list[ClaimedEntry]) -> None:
        """E-mails whose render crashed: tried again after a backoff, dead-lettered after RENDER_CRASHES."""
        await asyncio.sleep(self._backoff.delay(self._render_backoff))
        self._render_backoff += 1
        for c in crashed:
            if c.attempts + 1 >= RENDER_CRASHES:
                failure = Failure("render_crashed", f"the render process failed on it {c.attempts + 1} times")
                if await self._record(self._mark_failed, c.entry.notification_id, failure, False):
                    self._spawn(self._dead_letter(c, failure))
                else:
                    self._let_go(c.entry.notification_id)
                continue
            retry_at = self._clock() + self._backoff.delay(c.attempts)
            await self._record(self._retry_later, c.entry.notification_id, retry_at, c.first_tried_at or 0.0,
                               "render process failed")
            self._let_go(c.entry.notification_id)

    def _store_rendered(self, rendered: list[tuple[ClaimedEntry, RenderedMail | Failure | None]]) -> set[str]:
        """The ids still held: their bytes stored (or their failure marked) in one transaction."""
        now, kept = self._clock(), set()
        with self._store.transaction() as tx:
            for c, result in rendered:
                notification_id = c.entry.notification_id
                if isinstance(result, RenderedMail):
                    ok = tx.outbox.store_rendered(notification_id, result, self.owner)
                elif isinstance(result, Failure):
                    ok = tx.outbox.mark_failed(notification_id, result, now, self.owner)
                else:
                    continue
                if ok:
                    kept.add(notification_id)
        return kept

    # -- the suppression list: the last look before SMTP -------------------------------------------------
    async def _not_suppressed(self, entries: list[ClaimedEntry]) -> list[ClaimedEntry]:
        """The entries that may be sent; those whose address is suppressed are recorded as not sent."""
        if not entries:
            return entries
        stopped = await self._record(self._stop_suppressed, entries)
        if not stopped:
            return entries
        for s in stopped:
            entry = s.claimed.entry
            self._let_go(entry.notification_id)
            if s.suppression is None:
                continue  # another dispatcher holds it now: its decision
            detail = s.suppression.describe()
            log.info("notification %s not sent: address suppressed (%s)", entry.notification_id, detail)
            self._metrics.count_suppressed_send(s.suppression.reason.value)
            self.not_sent_by_reason[ADDRESS_SUPPRESSED] += len(entry.event_ids)
            for _ in entry.event_ids:  # counted per event, as the deciding side counts
                self._metrics.count_decision(DecisionOutcome.SUPPRESSED, ADDRESS_SUPPRESSED)
            self._log.not_sent(order_id=entry.order_id, customer_id=entry.customer_id, reason=ADDRESS_SUPPRESSED,
                               event_ids=entry.event_ids, template=entry.template, detail=detail)
        gone = {s.claimed.entry.notification_id for s in stopped}
        return [c for c in entries if c.entry.notification_id not in gone]

    def _stop_suppressed(self, entries: list[ClaimedEntry]) -> list[Stopped]:
        with self._store.transaction() as tx:
            return stop_suppressed(tx, entries, self._settings.complaint_blocks_must_send, self._clock(), self.owner)

    # -- sending, one worker per SMTP connection -------------------------------------------------------
    async def _connection_worker(self, queue: asyncio.Queue[ClaimedEntry | None]) -> None:
        while (claimed := await queue.get()) is not None:
            try:
                await self._deliver(claimed)
            except Exception:  # a bug in one e-mail must not stop the connection; its lease runs out, it is retried
                log.exception("delivering notification %s failed", claimed.entry.notification_id)
                self._let_go(claimed.entry.notification_id)
            finally:
                queue.task_done()
        queue.task_done()

    async def _deliver(self, claimed: ClaimedEntry) -> None:
        entry, mail = claimed.entry, claimed.mail
        assert mail is not None
        first_tried = claimed.first_tried_at or self._clock()
        attempts = claimed.attempts
        while True:
            if not await self._still_ours(entry.notification_id):
                log.warning("notification %s was taken over by another consumer; not sending it here",
                            entry.notification_id)
                return
            self._rendered_here.discard(entry.notification_id)  # from now on it may have reached the server
            try:
                with self._metrics.time_smtp_send():
                    await self._sender.send_once(OutgoingEmail(mail.message_id, mail.mail_from, mail.rcpt_to,
                                                               mail.data))
            except SmtpTransientError as exc:
                self._metrics.count_email_failed(entry.template, FailureClass.TRANSIENT)
                self._health.smtp_reached(exc.__cause__ or exc)
                delay = self._backoff.delay(attempts)
                attempts += 1
                if self._clock() + delay > first_tried + self._settings.smtp_retry_budget_s:
                    self._metrics.count_email_failed(entry.template, FailureClass.EXHAUSTED)
                    failure = Failure(SmtpRetriesExhausted.reason, f"gave up after {attempts} attempts in "
                                                                   f"{self._clock() - first_tried:.0f} s: {exc}")
                    break
                log.warning("SMTP attempt %d for notification %s failed (%s); again in %.1f s", attempts,
                            entry.notification_id, exc, delay)
                if isinstance(exc, SmtpUnavailable):
                    # The server, not this message: wait on this connection (its lease is renewed meanwhile)
                    # rather than hand every e-mail in turn to a server that is away.
                    await asyncio.sleep(delay)
                    continue
                # This message was refused for now: let it go until then; the connection serves others.
                await self._record(self._retry_later, entry.notification_id, self._clock() + delay, first_tried,
                                   str(exc))
                self._let_go(entry.notification_id)
                return
            except SmtpPermanentError as exc:
                self._metrics.count_email_failed(entry.template, FailureClass.PERMANENT)
                self._health.smtp_reached()
                failure = Failure(exc.reason, str(exc))
                break
            else:
                self._health.smtp_reached()
                await self._sent(claimed, mail)  # recorded before this connection takes its next e-mail
                self._let_go(entry.notification_id)
                self.sent_by_template[entry.template] += 1
                self._metrics.email_sent(entry.template, mail.first_occurred_at)
                self._metrics.count_decision(DecisionOutcome.SENT)
                return
        if await self._record(self._mark_failed, entry.notification_id, failure, True):
            self._spawn(self._dead_letter(claimed, failure))
        else:
            self._let_go(entry.notification_id)  # another dispatcher holds it now: its decision

    async def _still_ours(self, notification_id: str) -> bool:
        """Whether this process still holds the entry with lease enough for one SMTP transaction; a lease
        running short (the renewer could not reach the store) is renewed here first."""
        margin = self._settings.outbox_lease_s / 3
        if self._held.safe_to_send(notification_id, self._clock(), margin):
            return True
        if notification_id not in self._held:
            return False
        kept = await self._renew_held([notification_id])
        return notification_id in kept and self._held.safe_to_send(notification_id, self._clock(), margin)

    async def _sent(self, claimed: ClaimedEntry, mail: RenderedMail) -> None:
        """Wait until the e-mail is recorded as sent. The outcomes of the connections that are waiting at the
        same time go into one transaction (one store round trip for several e-mails); each connection still
        waits for its own before it takes the next e-mail."""
        recorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sent_waiting.append((claimed, mail, recorded))
        if not self._recording_sent:
            self._recording_sent = True
            self._spawn(self._record_sent_waiting())
        await recorded

    async def _record_sent_waiting(self) -> None:
        try:
            while self._sent_waiting:
                batch, self._sent_waiting = self._sent_waiting, []
                try:
                    await self._record(self._record_sent, [(c, m) for c, m, _ in batch])
                except Exception as exc:  # not retriable: each connection hears of it
                    for _, _, recorded in batch:
                        recorded.set_exception(exc)
                else:
                    for _, _, recorded in batch:
                        recorded.set_result(None)
        finally:
            self._recording_sent = False

    def _record_sent(self, sent: list[tuple[ClaimedEntry, RenderedMail]]) -> None:
        now = self._clock()
        with self._store.transaction() as tx:
            for claimed, _ in sent:
                tx.outbox.mark_sent(claimed.entry.notification_id, now)
        for claimed, mail in sent:
            e = claimed.entry
            self._log.sent(order_id=e.order_id, customer_id=e.customer_id, template=e.template, locale=mail.locale,
                           subject=mail.subject, message_id=mail.message_id, event_ids=e.event_ids)

    def _retry_later(self, notification_id: str, at: float, first_tried: float, error: str) -> None:
        with self._store.transaction() as tx:
            tx.outbox.retry_later(notification_id, at, first_tried, error, self.owner)

    def _mark_failed(self, notification_id: str, failure: Failure, attempted: bool) -> bool:
        with self._store.transaction() as tx:
            return tx.outbox.mark_failed(notification_id, failure, self._clock(), self.owner, attempted=attempted)

    # -- dead letters: nothing is released before the topic has them -------------------------------------
    async def _dead_letter(self, claimed: ClaimedEntry, failure: Failure) -> None:
        entry = claimed.entry
        records = [SourceRecord(e.src_topic, e.src_partition, e.src_offset, entry.order_id.encode(), e.event, ())
                   for e in claimed.events]

        async def publish() -> None:
            for record in records:
                await asyncio.to_thread(self._dead_letters.publish, record, failure.reason, failure.detail)

        try:
            await retry_async(publish, f"dead-lettering notification {entry.notification_id}", self._backoff,
                              on_error=self._health.dead_letters_reached)
            if await self._record(self._release_dead_lettered, claimed):
                for _ in records:
                    self._metrics.count_dead_letter(failure.reason)
                    self._metrics.count_decision(DecisionOutcome.DEAD_LETTERED, failure.reason)
        except Exception:  # kept as failed, with its events: whoever claims it next dead-letters it
            log.exception("dead-lettering notification %s failed; it is tried again after its lease",
                          entry.notification_id)
        finally:
            self._let_go(entry.notification_id)

    def _release_dead_lettered(self, claimed: ClaimedEntry) -> bool:
        """The entry is done; its events are forgotten, so that a replay of the dead letters can send them.
        False if it was no longer failed (another holder finished it)."""
        facts: set[str] = set()
        for e in claimed.events:
            with contextlib.suppress(DecodeError):
                facts |= facts_of(self._codec.decode(e.event))
        with self._store.transaction() as tx:
            if not tx.outbox.mark_dead_lettered(claimed.entry.notification_id):
                return False
            tx.release_events(claimed.entry.order_id, claimed.entry.event_ids, facts)
            return True

    # -- leases, gauges, retention ------------------------------------------------------------------------
    async def _upkeep(self, stop: asyncio.Event) -> None:
        last_prune = 0.0
        every = min(HOUSEKEEPING_S, self._settings.outbox_lease_s / 3)
        while not stop.is_set():
            try:
                if len(self._held):
                    await self._renew_held(self._held.ids())
                pending, backlog = await self._in_db(self._counts)
                self._metrics.pending_notifications.set(pending)
                self._metrics.outbox_entries.set(backlog)
                if time.monotonic() - last_prune > PRUNE_EVERY_S:
                    last_prune = time.monotonic()
                    await self._in_db(self.prune)
                self._health.store_reached()
            except Exception as exc:
                self._report_store(exc)
                log.warning("outbox upkeep failed, will retry: %s", exc, exc_info=not _retriable(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)

    def _renew(self, notification_ids: list[str]) -> tuple[set[str], float]:
        """In the store thread: renew; the ids still ours, and when."""
        now = self._clock()
        with self._store.transaction() as tx:
            return tx.outbox.renew(self.owner, notification_ids, now + self._settings.outbox_lease_s), now

    async def _renew_held(self, notification_ids: list[str]) -> set[str]:
        """Renew, and forget what another dispatcher took over meanwhile (this one's lease had run out)."""
        kept, now = await self._record(self._renew, notification_ids)
        lost = self._held.renewed(notification_ids, kept, now)
        if lost:
            log.warning("%d outbox entries were taken over by another consumer (this one's lease ran out)",
                        len(lost))
            self._metrics.in_flight.set(len(self._held))
        return kept

    def _counts(self) -> tuple[int, int]:
        with self._store.transaction() as tx:
            return tx.pending_count(), tx.outbox.backlog()

    def prune(self) -> dict[str, int]:
        """Retention: what no decision needs any more (older than the age limit plus a margin) is deleted."""
        horizon = (self._settings.max_event_age_h + self._settings.retention_margin_h) * 3600
        with self._store.transaction() as tx:
            removed = tx.prune(self._clock() - horizon)
        if any(removed.values()):
            log.info("retention: removed %s", removed)
        return removed

    def _release(self, notification_ids: list[str], untried: bool = False) -> None:
        with self._store.transaction() as tx:
            tx.outbox.release(self.owner, notification_ids, untried)

    def _let_go(self, notification_id: str) -> None:
        self._held.let_go(notification_id)
        self._rendered_here.discard(notification_id)
        self._metrics.in_flight.set(len(self._held))
        if len(self._held) < self._max_held // 2:
            self.wake()

    # -- helpers ---------------------------------------------------------------------------------------
    async def _in_db(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db, call, *args)

    async def _record(self, call: Callable[..., T], *args: Any) -> T:
        """Record what happened, however long the store is away: an entry left as it was would be redone."""
        return await retry_async(lambda: self._in_db(call, *args), "recording an outcome", self._backoff,
                                 on_error=self._health.store_reached)

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def _report_store(self, exc: BaseException) -> None:
        if _retriable(exc):
            self._health.store_reached(exc if isinstance(exc, Exception) else None)

    async def _shut_down(self, queue: asyncio.Queue[ClaimedEntry | None], workers: list[asyncio.Task[None]],
                         grace_s: float) -> None:
        """E-mails being sent get ``grace_s`` to finish and be recorded; the rest is let go at once, so another
        consumer (or the next start) takes it without waiting for the lease. Those rendered here and never
        tried go back to ``ready``; any other keeps its stored bytes."""
        untried: list[str] = []
        while not queue.empty():
            item = queue.get_nowait()
            if item is not None and item.entry.notification_id in self._rendered_here:
                untried.append(item.entry.notification_id)
        for _ in workers:
            queue.put_nowait(None)
        done, pending = await asyncio.wait([*workers, *self._side_tasks], timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("shutdown: %d e-mails or dead letters unfinished; they are sent again later", len(pending))
            await asyncio.wait(pending, timeout=2.0)
        try:
            await self._in_db(self._release, [i for i in self._held.ids() if i not in untried])
            await self._in_db(self._release, untried, True)
        except Exception as exc:  # their leases run out instead
            log.warning("could not let claimed e-mails go at shutdown: %s", exc)

    def close(self) -> None:
        self._db.shutdown(wait=True)
        self._composer.close()



def _retriable(exc: BaseException) -> bool:
    return bool(getattr(exc, "retriable", False))
