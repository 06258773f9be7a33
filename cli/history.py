"""``ordernotify history --order ID``: what one order's customer was told, and what was not sent and why.

Reads the communications log topic (``--sent-topic``), but only the one
partition the order's records live in: the log is keyed by order id, and the
partition is found with the same formula kafka-python's default partitioner
used when producing (murmur2 of the UTF-8 key, sign bit cleared, modulo the
partition count). That partition is read from its beginning to its current
end; one line per record of the order, oldest first.

When the read stops: at the partition's end offset once a poll comes back
empty (right for Apache Kafka), and in any case after ~1.5 s of empty polls.
The second rule is there because the dev broker (Tansu) answers
``ListOffsets`` wrongly when the last batch holds several records (see
:mod:`consumers.decide.lag`), so the end offset alone cannot be trusted there.

Subject lines can name the customer; that is expected when an operator asks
about one order. The records carry no e-mail addresses, and none are printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2

from cli.exit_codes import for_kafka_error
from ordernotify.config import Settings
from ordernotify.kafka_closing import close_consumer
from ordernotify.reachability import kafka_error_text, reaching_broker
from schemas.codec import AvroCodec
from schemas.exceptions import DecodeError
from schemas.registry import NOTIFICATION_SENT

EMPTY_POLLS_DONE_S = 1.5  # the dev broker's end offsets can be wrong: stop after this long without data
READ_TIMEOUT_S = 60.0  # a hard limit for a huge partition or a broker that keeps trickling
POLL_MS = 200
SHORT_ID = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--order", required=True, metavar="ID", help="the order id (the log's record key)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


@dataclass(frozen=True, slots=True)
class Communication:
    """One record of the communications log, as far as an operator needs it."""

    recorded_at: datetime
    offset: int
    sent: bool
    reason: str | None
    template: str | None
    subject: str | None
    message_id: str | None
    event_ids: tuple[str, ...]
    detail: str | None = None

    @property
    def outcome(self) -> str:
        """'sent', 'not sent: opted_out', or with a detail in words: 'not sent: address suppressed (hard bounce
        on 2026-12-02)'."""
        if self.sent:
            return "sent"
        if self.detail:
            return f"not sent: {(self.reason or 'unknown').replace('_', ' ')} ({self.detail})"
        return f"not sent: {self.reason or 'unknown'}"

    def as_json(self) -> dict[str, Any]:
        return {
            "recorded_at": _iso(self.recorded_at),
            "outcome": "sent" if self.sent else "not_sent",
            "reason": self.reason,
            "detail": self.detail,
            "template": self.template,
            "subject": self.subject,
            "message_id": self.message_id,
            "event_ids": list(self.event_ids),
        }


def partition_for(key: bytes, partitions: list[int]) -> int:
    """The partition kafka-python's DefaultPartitioner picks for ``key`` (Java client compatible)."""
    ordered = sorted(partitions)
    return ordered[(murmur2(key) & 0x7FFFFFFF) % len(ordered)]


def read_history(settings: Settings, order_id: str) -> tuple[list[Communication], int] | None:
    """The order's records, oldest first, and how many records failed to decode; None if the topic is missing."""
    key = order_id.encode("utf-8")
    codec = AvroCodec(NOTIFICATION_SENT)
    with reaching_broker(settings):
        consumer = KafkaConsumer(**settings.kafka_client_options(), group_id=None, enable_auto_commit=False,
                                 client_id="ordernotify-history")
    try:
        partitions = consumer.partitions_for_topic(settings.sent_topic)
        if not partitions:
            return None
        tp = TopicPartition(settings.sent_topic, partition_for(key, list(partitions)))
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        found: list[Communication] = []
        undecodable = 0
        started = last_data = time.monotonic()
        while time.monotonic() - started < READ_TIMEOUT_S:
            batch = consumer.poll(timeout_ms=POLL_MS).get(tp, [])
            now = time.monotonic()
            if batch:
                last_data = now
            for record in batch:
                if record.key is not None and record.key != key:
                    continue
                try:
                    datum = codec.decode(record.value or b"")
                except DecodeError:
                    undecodable += 1
                    continue
                if datum["order_id"] == order_id:
                    found.append(_communication(datum, record.offset))
            if not batch and (consumer.position(tp) >= end or now - last_data >= EMPTY_POLLS_DONE_S):
                break
        found.sort(key=lambda c: (c.recorded_at, c.offset))
        return found, undecodable
    finally:
        close_consumer(consumer)


def _communication(datum: dict[str, Any], offset: int) -> Communication:
    recorded_at = datum["recorded_at"]
    if isinstance(recorded_at, int):  # fastavro returns an aware datetime; a raw millisecond count just in case
        recorded_at = datetime.fromtimestamp(recorded_at / 1000, UTC)
    outcome = datum["outcome"]
    if isinstance(outcome, tuple):  # enums may come back with their record name
        outcome = outcome[1]
    return Communication(
        recorded_at=recorded_at.astimezone(UTC),
        offset=offset,
        sent=outcome == "SENT",
        reason=datum.get("reason"),
        template=datum.get("template"),
        subject=datum.get("subject"),
        message_id=datum.get("message_id"),
        event_ids=tuple(datum.get("event_ids") or ()),
        detail=datum.get("detail"),
    )


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def format_table(communications: list[Communication]) -> list[str]:
    header = ("TIME (UTC)", "OUTCOME", "TEMPLATE", "SUBJECT", "MESSAGE-ID", "EVENTS")
    rows = [
        (_iso(c.recorded_at), c.outcome, c.template or "-", c.subject or "-", c.message_id or "-",
         " ".join(e[:SHORT_ID] for e in c.event_ids) or "-")
        for c in communications
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    return [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip()
        for row in (header, *rows)
    ]


def run(args: argparse.Namespace, settings: Settings) -> int:
    order_id: str = args.order
    try:
        result = read_history(settings, order_id)
    except KafkaError as exc:
        print(f"ordernotify: history: cannot read {settings.sent_topic} at {settings.bootstrap_servers}: "
              f"{kafka_error_text(exc)}", file=sys.stderr)
        return for_kafka_error(exc)
    if result is None:
        print(f"history: topic {settings.sent_topic} does not exist at {settings.bootstrap_servers}", file=sys.stderr)
        return 1
    communications, undecodable = result
    if undecodable:
        print(f"history: skipped {undecodable} record(s) that do not decode as {NOTIFICATION_SENT}", file=sys.stderr)
    if args.json:
        print(json.dumps({"order_id": order_id, "topic": settings.sent_topic,
                          "communications": [c.as_json() for c in communications]}, indent=2))
        return 0
    if not communications:
        print(f"no communications recorded for order {order_id}")
        return 0
    for line in format_table(communications):
        print(line)
    return 0
