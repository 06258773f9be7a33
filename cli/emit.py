"""``ordernotify emit [FILE]``: send JSON-lines events (and preferences) to Kafka, reporting per line.

Sent lines are reported on stdout, refused or failed ones on stderr, so that
``2>errors.txt`` collects exactly what needs fixing. Messages name order and
customer ids but never e-mail addresses. Exit code: 0 if every line was sent,
1 if any was refused or failed (the others are still sent).
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from kafka.errors import KafkaError

from ordernotify.config import Settings
from producers.event_producer import DeliveryReport, OrderEventProducer
from producers.exceptions import DeliveryFailed, EventRefused, InputError
from producers.json_lines import parse_lines
from schemas.events import OrderEvent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", nargs="?", default="-", metavar="FILE",
        help="JSON lines, one event or {\"preferences\": {...}} per line (default: - for stdin)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        stream: TextIO = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")
    except OSError as exc:
        print(f"emit: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        return _emit(stream, settings)
    finally:
        if stream is not sys.stdin:
            stream.close()


def _emit(stream: TextIO, settings: Settings) -> int:
    try:
        producer = OrderEventProducer(settings)
    except KafkaError as exc:
        print(f"emit: cannot connect to Kafka at {settings.bootstrap_servers}: {exc}", file=sys.stderr)
        return 1
    sent = refused = failed = 0
    try:
        for line in parse_lines(stream):
            value = line.value
            if isinstance(value, InputError):
                refused += 1
                where = f"{value.field}: " if value.field else ""
                print(f"line {line.line_number}: refused: {where}{value.problem}", file=sys.stderr)
                continue
            try:
                if isinstance(value, OrderEvent):
                    report = producer.send_and_wait(value)
                    what = f"{value.event_type.value} order {value.order_id}"
                else:
                    report = producer.publish_preferences(value)
                    what = f"preferences customer {value.customer_id}"
            except EventRefused as exc:
                refused += 1
                print(f"line {line.line_number}: refused: {exc}", file=sys.stderr)
                continue
            except DeliveryFailed as exc:
                failed += 1
                print(f"line {line.line_number}: failed: {exc}", file=sys.stderr)
                continue
            sent += 1
            print(f"line {line.line_number}: sent {what} -> {_where(report)}", flush=True)
    finally:
        try:
            producer.close()
        except DeliveryFailed as exc:
            failed += 1
            print(f"emit: {exc}", file=sys.stderr)
    print(f"emit: {sent} sent, {refused} refused, {failed} failed", file=sys.stderr)
    return 0 if refused == failed == 0 else 1


def _where(report: DeliveryReport) -> str:
    return f"{report.topic}[{report.partition}]@{report.offset}"
