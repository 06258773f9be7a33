"""``ordernotify status``: is the consumer group keeping up, is anything dead-lettered, when did mail last go out?

Lag is the group's committed offset against each partition's end (what a
restart would have left to do); it reads low on the Tansu dev broker when a
partition's last batch holds several records (see ``consumers/decide/lag.py``).
The dead-letter depth is the number of records on the dead-letter topic; the
last e-mail is the newest ``SENT`` record in the tail of the communications
log. Nothing personal (order ids, addresses) is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from cli.exit_codes import for_kafka_error
from consumers.decide.lag import partition_lag
from ordernotify.config import Settings
from ordernotify.kafka_closing import close_consumer
from ordernotify.reachability import kafka_error_text, reaching_broker
from schemas.codec import AvroCodec
from schemas.exceptions import SchemaError
from schemas.registry import NOTIFICATION_SENT

TAIL_RECORDS = 2000  # per partition of the communications log


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace, settings: Settings) -> int:
    consumer = None
    try:
        with reaching_broker(settings):
            consumer = KafkaConsumer(**settings.kafka_client_options(), group_id=settings.group_id,
                                     enable_auto_commit=False, client_id="ordernotify-status")
        status = collect_status(consumer, settings)
    except KafkaError as exc:
        print(f"ordernotify: status: cannot read from Kafka at {settings.bootstrap_servers}: {kafka_error_text(exc)}",
              file=sys.stderr)
        return for_kafka_error(exc)
    finally:
        if consumer is not None:
            close_consumer(consumer, autocommit=False)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(format_status(status))
    return 0


def collect_status(consumer: Any, settings: Settings) -> dict[str, Any]:
    """Lag, dead-letter depth and last e-mail, using a consumer that carries the group id but never joins."""
    events = _partitions(consumer, settings.events_topic)
    lag = partition_lag(consumer, events)
    ends = consumer.end_offsets(events) if events else {}
    partitions = []
    for tp in events:
        committed = consumer.committed(tp)
        partitions.append({"partition": tp.partition, "committed": committed, "end": ends.get(tp),
                           "lag": lag.get(tp)})
    dlq = _partitions(consumer, settings.dlq_topic)
    dlq_depth = 0
    if dlq:
        dlq_ends, dlq_starts = consumer.end_offsets(dlq), consumer.beginning_offsets(dlq)
        dlq_depth = sum(max(0, dlq_ends[tp] - dlq_starts[tp]) for tp in dlq)
    last_sent, template = _last_email(settings)
    return {
        "group": settings.group_id,
        "topic": settings.events_topic,
        "partitions": partitions,
        "total_lag": sum(v for v in lag.values()),
        "dlq_topic": settings.dlq_topic,
        "dlq_depth": dlq_depth,
        "last_email_sent": last_sent,
        "last_email_template": template,
    }


def format_status(status: dict[str, Any]) -> str:
    lines = [f"group {status['group']} on {status['topic']}:"]
    for p in status["partitions"]:
        committed = "-" if p["committed"] is None else p["committed"]
        lines.append(f"  partition {p['partition']}: committed {committed}, end {p['end']}, lag {p['lag']}")
    lines.append(f"  total lag: {status['total_lag']}")
    lines.append(f"dead letters on {status['dlq_topic']}: {status['dlq_depth']}")
    when = status["last_email_sent"] or "never"
    template = f" ({status['last_email_template']})" if status["last_email_template"] else ""
    lines.append(f"last e-mail sent: {when}{template}")
    return "\n".join(lines)


def _partitions(consumer: Any, topic: str) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


def _last_email(settings: Settings, timeout_s: float = 20.0) -> tuple[str | None, str | None]:
    """(ISO time, template) of the newest SENT record in the tail of the communications log, or (None, None)."""
    codec = AvroCodec(NOTIFICATION_SENT)
    with reaching_broker(settings):
        reader = KafkaConsumer(**settings.kafka_client_options(), group_id=None, enable_auto_commit=False,
                               client_id="ordernotify-status-log")
    newest: tuple[datetime, str | None] | None = None
    try:
        tps = _partitions(reader, settings.sent_topic)
        if not tps:
            return None, None
        reader.assign(tps)
        starts, ends = reader.beginning_offsets(tps), reader.end_offsets(tps)
        for tp in tps:
            reader.seek(tp, max(starts[tp], ends[tp] - TAIL_RECORDS))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = reader.poll(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    sent = _sent_at(codec, record.value)
                    if sent is not None and (newest is None or sent[0] > newest[0]):
                        newest = sent
            if not batch and all(reader.position(tp) >= ends[tp] for tp in tps):
                break
    finally:
        close_consumer(reader)
    if newest is None:
        return None, None
    return newest[0].isoformat(timespec="seconds").replace("+00:00", "Z"), newest[1]


def _sent_at(codec: AvroCodec, value: bytes | None) -> tuple[datetime, str | None] | None:
    if not value:
        return None
    try:
        datum = codec.decode(value)
    except SchemaError:
        return None  # not ours to judge here; the log's writer is the consumer
    if datum.get("outcome") != "SENT":
        return None
    recorded = datum.get("recorded_at")
    if isinstance(recorded, int):
        recorded = datetime.fromtimestamp(recorded / 1000, UTC)
    if not isinstance(recorded, datetime):
        return None
    if recorded.tzinfo is None:
        recorded = recorded.replace(tzinfo=UTC)
    return recorded, datum.get("template")
