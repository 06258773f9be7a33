"""A decided notification -> its outbox entry (rendered, built into MIME bytes), here or in worker processes.

Rendering and MIME assembly are most of the consumer's Python work per e-mail (README, Performance).
:class:`ProcessComposer` does it in worker processes (spawned, not forked: the consumer has Kafka and
SQLite threads), so a second core does it and the consumer's own process keeps the event loop, the store
and the SMTP client (in the bench run that added it, with two smaller changes, 1.83x -> 2.19x the naive
loop; 102 -> 134 e-mails/s in an A/B of this change alone). Windows (coalesced e-mails) and
the rare re-render inside a decision's transaction still render in the consumer's threads.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from consumers.exceptions import ComposerUnavailable, RenderError
from consumers.message import build_message
from consumers.notification import Notification
from consumers.policy.rules import INFORMATIONAL_TEMPLATES
from consumers.rendering import Renderer
from consumers.state.store import OutboxEntry
from ordernotify.config import Settings


def outbox_entry(renderer: Renderer, notification: Notification, settings: Settings) -> OutboxEntry:
    """Render and build the e-mail; raise :class:`RenderError` if it cannot be produced."""
    rendered = renderer.render(notification)
    mail = build_message(rendered, notification, settings)
    return OutboxEntry(
        notification_id=notification.notification_id, order_id=notification.order_id,
        customer_id=notification.customer.customer_id, template=notification.template.value,
        informational=notification.template in INFORMATIONAL_TEMPLATES, message_id=mail.message_id,
        event_ids=notification.event_ids, subject=rendered.subject, locale=rendered.locale,
        mail_from=mail.sender, rcpt_to=mail.recipient, data=mail.data,
    )


class Composer(Protocol):
    async def compose(self, notification: Notification) -> OutboxEntry: ...

    def close(self) -> None: ...


class ProcessComposer:
    """In ``processes`` spawned worker processes, each with its own :class:`Renderer` (templates compiled once)."""

    def __init__(self, settings: Settings, processes: int) -> None:
        self._settings = settings
        self._processes = processes
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self._processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker, initargs=(self._settings,))

    async def start(self) -> None:
        """Start the workers and compile their templates now, not on the first e-mail. Workers that cannot
        start stop the consumer here, with the reason and their pool shut down."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, _ready)
        except BrokenProcessPool as exc:
            self._pool.shutdown(wait=False, cancel_futures=True)
            raise ComposerUnavailable(f"the render worker processes could not start ({exc}; their error is "
                                      "in the log above); --render-processes 0 renders in the consumer's own "
                                      "threads") from exc

    async def compose(self, notification: Notification) -> OutboxEntry:
        pool = self._pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, _compose, notification)
        except BrokenProcessPool as exc:
            # A worker died (killed, out of memory): not the events' fault. New workers; the record is retried.
            if self._pool is pool:
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
            raise ComposerUnavailable(f"a render worker process died: {exc}") from exc

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# -- in the worker process ------------------------------------------------------------------------------
_worker: tuple[Renderer, Settings] | None = None


def _start_worker(settings: Settings) -> None:
    global _worker
    _worker = (Renderer(settings), settings)
    parent = os.getppid()
    threading.Thread(target=_exit_with_parent, args=(parent,), name="exit-with-parent", daemon=True).start()


def _exit_with_parent(parent: int, every_s: float = 0.5) -> None:
    """A worker whose consumer was killed (SIGKILL: no shutdown) would wait for work forever: the task queue's
    pipe never reports EOF, since the worker holds its write end too. Reparented means the consumer is gone."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(0)


def _ready() -> None:
    if _worker is None:
        raise RenderError("render worker not initialised")


def _compose(notification: Notification) -> OutboxEntry:
    if _worker is None:
        raise RenderError("render worker not initialised")
    return outbox_entry(_worker[0], notification, _worker[1])
