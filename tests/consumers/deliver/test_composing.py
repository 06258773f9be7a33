"""E-mails rendered in worker processes: the same bytes, the same errors, and no worker left behind."""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from consumers.deliver.composing import ProcessComposer, RenderJob, ThreadComposer, render_mail
from consumers.deliver.rendering import Renderer
from consumers.exceptions import ComposerUnavailable
from consumers.notification import Notification
from consumers.state.outbox import Failure, RenderedMail
from ordernotify.config import Settings
from schemas.codec import EventCodec
from schemas.events import OrderEvent
from tests import factories as f

SETTINGS = Settings()
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def composer() -> Iterator[ProcessComposer]:
    composer = ProcessComposer(SETTINGS, 1)
    asyncio.run(composer.start())
    yield composer
    composer.close()


def _without_date(mail: RenderedMail) -> RenderedMail:
    return dataclasses.replace(mail, data=re.sub(rb"\r\nDate: [^\r]*", b"", mail.data), first_occurred_at=None)


def _job(event: OrderEvent, encode: bool = True) -> RenderJob:
    notification = Notification.for_event(event)
    raw = EventCodec().encode(event) if encode else b"\x00garbage"
    return RenderJob(notification.notification_id, notification.template.value, (raw,))


def test_a_worker_builds_the_message_this_process_would_in_the_jobs_order(composer: ProcessComposer) -> None:
    events = [f.placed_event(customer=f.make_customer(locale="de-DE")), f.placed_event(order_id="OTHER-1")]
    theirs = asyncio.run(composer.render([_job(e) for e in events]))
    ours = [render_mail(Renderer(SETTINGS), Notification.for_event(e), SETTINGS) for e in events]
    assert [_without_date(m) for m in theirs if isinstance(m, RenderedMail)] == [_without_date(m) for m in ours]
    assert "Bestellung" in ours[0].subject


def test_a_render_error_in_a_worker_comes_back_as_that_jobs_failure(composer: ProcessComposer) -> None:
    good = f.placed_event()
    unknown = dataclasses.replace(_job(good), template="no_such_template")
    results = asyncio.run(composer.render([unknown, _job(good), _job(good, encode=False)]))
    assert results[0] == Failure("render_failed", "no template set 'no_such_template' (entry written by another "
                                                  "version?)")
    assert isinstance(results[1], RenderedMail)
    assert isinstance(results[2], Failure) and results[2].reason == "undecodable"


def test_the_thread_composer_gives_the_same_results() -> None:
    composer = ThreadComposer(SETTINGS)
    (mail,) = asyncio.run(composer.render([_job(f.placed_event(order_id="T-1"))]))
    assert isinstance(mail, RenderedMail) and "T-1" in mail.subject


def test_a_killed_worker_is_replaced_and_the_record_retried() -> None:
    composer = ProcessComposer(SETTINGS, 1)
    job = _job(f.placed_event())
    others = set(multiprocessing.active_children())
    try:
        asyncio.run(composer.start())
        (worker,) = set(multiprocessing.active_children()) - others
        os.kill(worker.pid or 0, signal.SIGKILL)
        worker.join(5)
        with pytest.raises(ComposerUnavailable) as caught:
            asyncio.run(composer.render([job]))
        assert caught.value.retriable
        (mail,) = asyncio.run(composer.render([job]))  # new workers
        assert isinstance(mail, RenderedMail) and mail.message_id
    finally:
        composer.close()


_CONSUMER = """
import asyncio, multiprocessing, time
from consumers.deliver.composing import ProcessComposer
from ordernotify.config import Settings
if __name__ == "__main__":
    composer = ProcessComposer(Settings(), 1)
    asyncio.run(composer.start())
    print(*(p.pid for p in multiprocessing.active_children()), flush=True)
    time.sleep(60)
"""


def test_workers_exit_when_the_consumer_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves no shutdown to run: the workers notice they were orphaned and exit."""
    script = tmp_path / "consumer.py"
    script.write_text(_CONSUMER)
    process = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert process.stdout is not None
    workers = [int(pid) for pid in process.stdout.readline().split()]
    assert workers
    process.kill()
    process.wait()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)


def _cannot_start(settings: Settings) -> None:
    raise RuntimeError("a worker that cannot start")


class _WorkersThatCannotStart(ProcessComposer):
    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_cannot_start,
                                   initargs=(SETTINGS,))


def test_workers_that_cannot_start_stop_the_consumer_with_the_reason_and_a_way_out() -> None:
    composer = _WorkersThatCannotStart(SETTINGS, 1)
    with pytest.raises(ComposerUnavailable, match=r"could not start .*--render-processes 0"):
        asyncio.run(composer.start())
    composer.close()  # already shut down: closing again is harmless
