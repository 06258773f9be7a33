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
from datetime import date
from pathlib import Path

import pytest

from consumers.composing import ProcessComposer, outbox_entry
from consumers.exceptions import ComposerUnavailable, RenderError
from consumers.notification import Notification
from consumers.rendering import Renderer
from consumers.state.store import OutboxEntry
from ordernotify.config import Settings
from tests import factories as f

SETTINGS = Settings()
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def composer() -> Iterator[ProcessComposer]:
    composer = ProcessComposer(SETTINGS, 1)
    asyncio.run(composer.start())
    yield composer
    composer.close()


def _without_date(entry: OutboxEntry) -> OutboxEntry:
    return dataclasses.replace(entry, data=re.sub(rb"\r\nDate: [^\r]*", b"", entry.data))


def test_a_worker_builds_the_entry_this_process_would(composer: ProcessComposer) -> None:
    notification = Notification.for_event(f.placed_event(customer=f.make_customer(locale="de-DE")))
    theirs = asyncio.run(composer.compose(notification))
    ours = outbox_entry(Renderer(SETTINGS), notification, SETTINGS)
    assert _without_date(theirs) == _without_date(ours)
    assert b"Vielen Dank" in theirs.data or "Bestellung" in theirs.subject


def test_a_render_error_in_a_worker_is_a_render_error_here(composer: ProcessComposer) -> None:
    broken = Notification.for_event(f.delivered_event(delivered_at=date(2030, 1, 1)))  # a date, not a datetime
    with pytest.raises(RenderError, match="failed on its data"):
        asyncio.run(composer.compose(broken))


def test_a_killed_worker_is_replaced_and_the_record_retried() -> None:
    composer = ProcessComposer(SETTINGS, 1)
    notification = Notification.for_event(f.placed_event())
    others = set(multiprocessing.active_children())
    try:
        asyncio.run(composer.start())
        (worker,) = set(multiprocessing.active_children()) - others
        os.kill(worker.pid or 0, signal.SIGKILL)
        worker.join(5)
        with pytest.raises(ComposerUnavailable) as caught:
            asyncio.run(composer.compose(notification))
        assert caught.value.retriable
        assert asyncio.run(composer.compose(notification)).message_id  # new workers
    finally:
        composer.close()


_CONSUMER = """
import asyncio, multiprocessing, time
from consumers.composing import ProcessComposer
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
