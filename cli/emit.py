"""``ordernotify emit [FILE]``: send JSON-lines events (and preferences) to Kafka, reporting per line.

Sent lines are reported on stdout, refused or failed ones on stderr, in the file's order, so that
``2>errors.txt`` collects exactly what needs fixing. Messages name order and customer ids but never
e-mail addresses. Exit code: 0 if every line was sent, 1 if any was refused or failed (the others are
still sent), 2 if FILE cannot be read.

Lines are sent without waiting for each acknowledgement: up to ``--window`` lines are in flight, and each
is reported from its own delivery result, in order, as soon as it and the lines before it are settled.
``--window 1`` waits for every acknowledgement before reading the next line. ``--dry-run`` checks the
whole file offline: every line is parsed, validated and encoded exactly as it would be sent, nothing
connects to Kafka, and the report and exit code are those of a real run (``valid`` instead of ``sent``).
For a file of 1 MiB or more, ``--encoders`` other processes parse and encode while this one sends
(:mod:`producers.line_encoding`); the output is the same.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import threading
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from types import FrameType
from typing import TextIO

from cli.exit_codes import ExitCode
from ordernotify.config import Settings
from producers.event_producer import DeliveryHandle, DeliveryReport, OrderEventProducer
from producers.exceptions import DeliveryFailed, EventRefused
from producers.line_encoding import EncodedLine, encoded_lines

DEFAULT_WINDOW = 1000
DEFAULT_ENCODERS = 2
ENCODERS_FROM_BYTES = 1 << 20  # about a thousand events: below that, starting processes costs more than they save


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", nargs="?", default="-", metavar="FILE",
        help="JSON lines, one event or {\"preferences\": {...}} per line (default: - for stdin)",
    )
    parser.add_argument("--dry-run", action="store_true",
                        help="validate and encode every line without connecting to Kafka; nothing is sent")
    parser.add_argument("--window", type=_positive_int, default=DEFAULT_WINDOW, metavar="N",
                        help=f"most lines in flight, awaiting the broker's acknowledgement (default: {DEFAULT_WINDOW};"
                             " 1: one at a time)")
    parser.add_argument("--encoders", type=_whole_number, default=None, metavar="N",
                        help=f"processes that parse and encode lines while this one sends (default: {DEFAULT_ENCODERS} "
                             f"for a file of {ENCODERS_FROM_BYTES >> 20} MiB or more, else 0; 0: all in one process;"
                             " standard input: always 0)")


def _positive_int(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _whole_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def run(args: argparse.Namespace, settings: Settings) -> int:
    # SIGTERM stops the command as Ctrl-C does (exit 130): what is in flight is settled or reported, and the
    # encoding processes are told to end rather than left behind
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        return _run(args, settings)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(args, settings)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        stream = _open_input(args.file)
    except OSError as exc:
        print(f"ordernotify: emit: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        with encoded_lines(stream, settings, _encoders(args.file, args.encoders)) as lines:
            if args.dry_run:
                return _check(lines)
            return _emit(lines, settings, args.window)
    finally:
        if args.file != "-":
            stream.close()


def _open_input(name: str) -> TextIO:
    """The file (or stdin) as UTF-8 text in which a byte that is not UTF-8 refuses its own line (named by
    :func:`producers.json_lines.parse_line`), not the whole run."""
    if name != "-":
        return open(name, encoding="utf-8", errors="surrogateescape")
    binary = getattr(sys.stdin, "buffer", None)
    if binary is None:  # already text (a test's stream)
        return sys.stdin
    return io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape")


def _encoders(name: str, asked: int | None) -> int:
    """How many processes parse and encode beside the one that sends (:mod:`producers.line_encoding`): as asked,
    else :data:`DEFAULT_ENCODERS` for a regular file of at least :data:`ENCODERS_FROM_BYTES`; never for standard
    input, whose lines may trickle in and would wait for a chunk to fill."""
    if name == "-":
        return 0
    if asked is not None:
        return asked
    try:
        return DEFAULT_ENCODERS if os.stat(name).st_size >= ENCODERS_FROM_BYTES else 0
    except OSError:
        return 0


@dataclass(frozen=True, slots=True)
class _Settled:
    """A line whose outcome is known when it is read: refused, failed at hand-over, or checked in a dry run."""

    outcome: str  # sent, valid, refused, failed
    text: str


@dataclass(frozen=True, slots=True)
class _InFlight:
    """A line handed to the producer, awaiting the broker's acknowledgement."""

    line_number: int
    what: str
    handle: DeliveryHandle


def _emit(lines: Iterable[EncodedLine], settings: Settings, window: int) -> int:
    # one at a time (--window 1) keeps the short linger: nothing else would join the batch
    producer = OrderEventProducer(settings, bulk=window > 1)
    counts: Counter[str] = Counter()
    pending: deque[_Settled | _InFlight] = deque()
    try:
        for line in lines:
            pending.append(_hand_over(producer, line))
            # Report, in order, what has settled; wait for the oldest only when the window is full.
            while pending and (len(pending) >= window or _settled(pending[0])):
                counts[_report(pending.popleft())] += 1
        while pending:
            counts[_report(pending.popleft())] += 1
    finally:
        try:
            producer.close()
        except DeliveryFailed as exc:
            counts["failed"] += 1
            print(f"emit: {exc}", file=sys.stderr)
    print(f"emit: {counts['sent']} sent, {counts['refused']} refused, {counts['failed']} failed", file=sys.stderr)
    return 0 if counts["refused"] == counts["failed"] == 0 else 1


def _check(lines: Iterable[EncodedLine]) -> int:
    """The dry run: each line parsed, validated and encoded (Avro) as :func:`_emit` would send it; no Kafka."""
    counts: Counter[str] = Counter()
    for line in lines:
        if line.record is None:
            entry = _refused(line)
        else:
            entry = _Settled("valid", f"line {line.line_number}: valid {line.what} -> {line.record.topic} "
                                      f"({len(line.record.value)} bytes)")
        counts[_report(entry)] += 1
    print(f"emit: dry run, nothing sent: {counts['valid']} valid, {counts['refused']} refused", file=sys.stderr)
    return 0 if counts["refused"] == 0 else 1


def _hand_over(producer: OrderEventProducer, line: EncodedLine) -> _Settled | _InFlight:
    if line.record is None:
        return _refused(line)
    try:
        return _InFlight(line.line_number, line.what, producer.send_encoded(line.record))
    except DeliveryFailed as exc:
        return _Settled("failed", f"line {line.line_number}: failed: {exc}")


def _refused(line: EncodedLine) -> _Settled:
    return _Settled("refused", f"line {line.line_number}: refused: {line.refusal}")


def _settled(entry: _Settled | _InFlight) -> bool:
    return isinstance(entry, _Settled) or entry.handle.done()


def _report(entry: _Settled | _InFlight) -> str:
    """Print one line's outcome (stdout if it went out, else stderr) and return it; waits for an acknowledgement."""
    if isinstance(entry, _InFlight):
        try:
            report = entry.handle.result()
        except DeliveryFailed as exc:
            entry = _Settled("failed", f"line {entry.line_number}: failed: {exc}")
        except EventRefused as exc:  # the broker refused it for good (too large for the topic)
            entry = _Settled("refused", f"line {entry.line_number}: refused: {exc.problem}")
        else:
            entry = _Settled("sent", f"line {entry.line_number}: sent {entry.what} -> {_where(report)}")
    ok = entry.outcome in ("sent", "valid")
    print(entry.text, file=sys.stdout if ok else sys.stderr, flush=ok)
    return entry.outcome


def _where(report: DeliveryReport) -> str:
    return f"{report.topic}[{report.partition}]@{report.offset}"
