"""JSON lines -> the Kafka records ``ordernotify emit`` sends: one outcome per line, in the input's order.

Reading a line into an event, checking it and encoding it as Avro (:mod:`producers.json_lines`,
:class:`producers.record_encoding.RecordEncoder`) costs about twice as much as handing the record to the Kafka
client. For a large file, :func:`encoded_lines` can do that work in other processes, a chunk of lines at a time and
a few chunks ahead, while the caller sends: more of a machine's cores work, and the outcomes are exactly those of
:func:`encode_lines`, in the same order. The caller keeps standard input in one process (a chunk would hold lines
that trickle in, such as a change-data-capture stream, until it filled).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from ordernotify.config import Settings
from producers.exceptions import EncodingStopped, EventRefused, InputError
from producers.json_lines import ParsedLine, parse_lines
from producers.record_encoding import EncodedRecord, RecordEncoder
from schemas.events import OrderEvent
from schemas.relative_times import reference_now

CHUNK_LINES = 500  # per hand-over to an encoding process: enough that handing over is a small share of the work
CALLER_CHECK_S = 0.5  # how soon an encoding process notices that its caller is gone
CHUNKS_AHEAD = 4  # submitted but not yet taken: keeps the processes busy and bounds memory whatever the file's size


@dataclass(frozen=True, slots=True)
class EncodedLine:
    """One input line's outcome: the record to send, or why the line is refused (``refusal``)."""

    line_number: int
    what: str  # "ORDER_PLACED order o-1", "preferences customer c-7"; empty when refused
    record: EncodedRecord | None
    refusal: str  # "payload.total: must be ..." when refused; empty otherwise


def encode_lines(lines: Iterable[str], settings: Settings, now: datetime | None = None,
                 first_line_number: int = 1) -> Iterator[EncodedLine]:
    """Parse, validate and encode each non-blank line, in this process; ``now`` as for
    :func:`producers.json_lines.parse_lines`."""
    encoder = RecordEncoder(settings)
    for line in parse_lines(lines, now, first_line_number):
        yield encode_line(encoder, line)


def encode_line(encoder: RecordEncoder, line: ParsedLine) -> EncodedLine:
    value = line.value
    if isinstance(value, InputError):
        where = f"{value.field}: " if value.field else ""
        return EncodedLine(line.line_number, "", None, f"{where}{value.problem}")
    try:
        if isinstance(value, OrderEvent):
            what = f"{value.event_type.value} order {value.order_id}"
            record = encoder.event(value, validated=True)
        else:
            what = f"preferences customer {value.customer_id}"
            record = encoder.preferences(value)
    except EventRefused as exc:
        return EncodedLine(line.line_number, "", None, str(exc))
    return EncodedLine(line.line_number, what, record, "")


@contextmanager
def encoded_lines(lines: Iterable[str], settings: Settings, processes: int = 0) -> Iterator[Iterator[EncodedLine]]:
    """The lines' outcomes, in order: encoded in this process (``processes=0``) or in that many others.

    The other processes start on entry, before the caller starts any thread (on Linux they are forks of this
    one: no second start-up, and nothing to inherit yet but the imported modules). Relative times resolve
    against the moment the first chunk is read, as :func:`encode_lines` resolves them against the first line.
    """
    if processes < 1:
        yield encode_lines(lines, settings)
        return
    worker = ProcessPoolExecutor(processes, mp_context=_CONTEXT, initializer=_start_worker,
                                 initargs=(settings, os.getpid()))
    try:
        chunks = _Chunks(worker, lines)
        chunks.submit_ahead()  # starts the process now
        yield chunks.outcomes()
    finally:
        worker.shutdown(wait=True, cancel_futures=True)


# fork where it is safe: no thread runs yet when the other processes start (see encoded_lines)
_CONTEXT = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")


class _Chunks:
    """The input cut into chunks of :data:`CHUNK_LINES`, each encoded in another process, a few ahead."""

    def __init__(self, worker: ProcessPoolExecutor, lines: Iterable[str]) -> None:
        self._worker = worker
        self._numbered = enumerate(lines, start=1)
        self._ahead: deque[tuple[int, Future[list[EncodedLine]]]] = deque()  # (its first line's number, outcomes)
        self._now: datetime | None = None

    def submit_ahead(self) -> None:
        while len(self._ahead) < CHUNKS_AHEAD and (chunk := list(islice(self._numbered, CHUNK_LINES))):
            self._now = self._now or reference_now()
            texts = [text for _, text in chunk]
            self._ahead.append((chunk[0][0], self._worker.submit(_encode_chunk, chunk[0][0], texts, self._now)))

    def outcomes(self) -> Iterator[EncodedLine]:
        while self._ahead:
            first_line_number, outcomes = self._ahead.popleft()
            try:
                done = outcomes.result()
                self.submit_ahead()
            except BrokenProcessPool as exc:  # one of them was killed: the pool has stopped the others
                raise EncodingStopped(f"an encoding process ended abruptly (killed?): line {first_line_number} and "
                                      "those after it were not sent") from exc
            yield from done


_encoder: RecordEncoder | None = None  # an encoding process's own, made once

#: whether a SIGTERM's sender can be told (Linux): else SIGTERM keeps ending the process, from whoever it comes
_SENDER_KNOWN = hasattr(signal, "sigtimedwait")


def _start_worker(settings: Settings, caller: int) -> None:
    global _encoder
    # Ctrl-C (or a SIGTERM to the process group) reaches us too: the caller stops us when it has stopped reading.
    # But the pool ends the others with SIGTERM when one of them died: that one must end us (see _end_with).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _SENDER_KNOWN:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # taken by _end_with, which sees who sent it
    threading.Thread(target=_end_with, args=(caller,), name="caller-watch", daemon=True).start()
    _encoder = RecordEncoder(settings)


def _end_with(caller: int) -> None:
    """End this process once the caller is gone (killed outright, it could not stop us: a forked worker holds its
    own copy of the queue it waits on, so it would otherwise wait for the next chunk for ever), or when the caller
    sends SIGTERM: its pool does so when another encoding process died, and waits until this one ended."""
    while os.getppid() == caller:
        if not _SENDER_KNOWN:
            time.sleep(CALLER_CHECK_S)
            continue
        received = signal.sigtimedwait({signal.SIGTERM}, CALLER_CHECK_S)
        if received is not None and received.si_pid == caller:
            os._exit(128 + signal.SIGTERM)
    os._exit(0)


def _encode_chunk(first_line_number: int, texts: list[str], now: datetime) -> list[EncodedLine]:
    assert _encoder is not None, "the worker starts with _start_worker"
    return [encode_line(_encoder, line) for line in parse_lines(texts, now, first_line_number)]
