"""Outbox entries -> the exact messages (rendered, built into MIME bytes), in batches, here or in worker processes.

Rendering and MIME assembly are most of the consumer's Python work per e-mail (bench/README.md). The
dispatcher hands a whole claim of entries over at once: one round trip per batch, not per e-mail.
:class:`ProcessComposer` spreads a batch over worker processes (spawned, not forked: the consumer has Kafka
and SQLite threads), so a second core does it while the consumer's own process keeps the event loop, the
store and the SMTP connections. The events travel as their Avro bytes and are decoded in the worker too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Protocol

from consumers.deliver.message import build_message
from consumers.deliver.rendering import Renderer
from consumers.exceptions import ComposerUnavailable, RenderError
from consumers.notification import Notification, Template
from consumers.state.outbox import Failure, RenderedMail
from ordernotify.config import Settings
from schemas.codec import EventCodec
from schemas.exceptions import DecodeError


@dataclass(frozen=True, slots=True)
class RenderJob:
    """One outbox entry to render: its template and the Avro bytes of the events it covers."""

    notification_id: str
    template: str
    events: tuple[bytes, ...]


RenderResult = RenderedMail | Failure


def render_mail(renderer: Renderer, notification: Notification, settings: Settings) -> RenderedMail:
    """Render and build one e-mail; raise :class:`RenderError` if it cannot be produced."""
    rendered = renderer.render(notification)
    mail = build_message(rendered, notification, settings)
    return RenderedMail(mail.message_id, rendered.subject, rendered.locale, mail.sender, mail.recipient, mail.data)


def render_job(renderer: Renderer, codec: EventCodec, settings: Settings, job: RenderJob) -> RenderResult:
    """A job's e-mail, or why it cannot be produced (the same events would fail the same way again)."""
    try:
        template = Template(job.template)
    except ValueError:
        return Failure(RenderError.reason, f"no template set {job.template!r} (entry written by another version?)")
    try:
        # Validated when they were decided; decoded here again, in the render process, not the consumer's.
        events = sorted((codec.decode(raw, validate=False) for raw in job.events), key=lambda e: e.occurred_at)
        mail = render_mail(renderer, Notification(template, tuple(events)), settings)
        return dataclasses.replace(mail, first_occurred_at=events[0].occurred_at.timestamp())
    except (RenderError, DecodeError) as exc:
        return Failure(exc.reason, str(exc))


class Composer(Protocol):
    async def render(self, jobs: list[RenderJob]) -> list[RenderResult]: ...

    def close(self) -> None: ...


class ThreadComposer:
    """In one worker thread of the consumer's own process (``--render-processes 0``)."""

    def __init__(self, settings: Settings) -> None:
        self._settings, self._renderer, self._codec = settings, Renderer(settings), EventCodec()

    async def start(self) -> None:
        return None

    async def render(self, jobs: list[RenderJob]) -> list[RenderResult]:
        return await asyncio.to_thread(self._render, jobs)

    def _render(self, jobs: list[RenderJob]) -> list[RenderResult]:
        return [render_job(self._renderer, self._codec, self._settings, job) for job in jobs]

    def close(self) -> None:
        return None


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
            await asyncio.gather(*(asyncio.get_running_loop().run_in_executor(self._pool, _ready)
                                   for _ in range(self._processes)))
        except BrokenProcessPool as exc:
            self._pool.shutdown(wait=False, cancel_futures=True)
            raise ComposerUnavailable(f"the render worker processes could not start ({exc}; their error is "
                                      "in the log above); --render-processes 0 renders in the consumer's own "
                                      "threads") from exc

    async def render(self, jobs: list[RenderJob]) -> list[RenderResult]:
        """The batch in one chunk per worker process; results in the jobs' order."""
        if not jobs:
            return []
        pool, loop = self._pool, asyncio.get_running_loop()
        size = -(-len(jobs) // self._processes)
        chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
        try:
            results = await asyncio.gather(*(loop.run_in_executor(pool, _render_chunk, chunk) for chunk in chunks))
        except BrokenProcessPool as exc:
            # A worker died (killed, out of memory): not the entries' fault. New workers; the caller retries.
            if self._pool is pool:
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
            raise ComposerUnavailable(f"a render worker process died: {exc}") from exc
        return [result for chunk in results for result in chunk]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def start_composer(settings: Settings) -> ThreadComposer | ProcessComposer:
    return ProcessComposer(settings, settings.render_processes) if settings.render_processes else ThreadComposer(
        settings)


# -- in the worker process ------------------------------------------------------------------------------
_worker: tuple[Renderer, EventCodec, Settings] | None = None


def _start_worker(settings: Settings) -> None:
    global _worker
    # Ctrl-C signals the whole process group: the consumer coordinates the stop (in-flight e-mails finish,
    # then the pool is shut down), so a worker must not die of it half-way with a KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker = (Renderer(settings), EventCodec(), settings)
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
    time.sleep(0.05)  # each worker takes one: all are started and compiled before the consumer goes on


def _render_chunk(jobs: list[RenderJob]) -> list[RenderResult]:
    if _worker is None:
        raise RenderError("render worker not initialised")
    renderer, codec, settings = _worker
    return [render_job(renderer, codec, settings, job) for job in jobs]
