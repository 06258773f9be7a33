"""``ordernotify dlq list|replay``: see what was dead-lettered, and send it back after a fix.

``list`` shows counts by reason and the newest entries -- when, why, and
where from (source topic, partition, offset), with the key's and value's
sizes only: keys and values carry order ids and e-mail addresses, so their
content (and the failure detail, which can quote an SMTP reply naming the
recipient) is printed only with ``--show-content``.

``replay`` re-produces each matching entry's original key, value and headers
(without the ``dlq.*`` headers, plus ``dlq.replayed_from: PARTITION:OFFSET``
of the dead letter) to its source topic. It keeps no memory of earlier
replays: running it twice with the same filters replays the same entries
twice. Narrow each replay with ``--reason`` and ``--since`` (the time the
problem was fixed is a good ``--since``), and check with ``--dry-run`` first.
A replayed event that was already e-mailed is not e-mailed again: the
consumer deduplicates by event id.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from cli.exit_codes import ExitCode, for_kafka_error
from consumers import dead_letters as dlq
from ordernotify.config import Settings
from ordernotify.kafka_closing import close_consumer
from ordernotify.reachability import kafka_error_text, reaching_broker

REPLAYED_FROM = "dlq.replayed_from"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("action", choices=("list", "replay"), help="list: show what is there; replay: send it back")
    parser.add_argument("--reason", action="append", default=None, metavar="R",
                        help="only entries with this dlq.reason (repeatable)")
    parser.add_argument("--since", default=None, metavar="T",
                        help="only entries dead-lettered at or after T: ISO time (UTC if no offset) or a duration "
                             "back from now such as 90m, 2h, 1d")
    parser.add_argument("--limit", type=int, default=10, metavar="N", help="list: newest N entries (default 10)")
    parser.add_argument("--show-content", action="store_true",
                        help="list: also print key, value and failure detail (may contain personal data)")
    parser.add_argument("--json", action="store_true", help="list: print JSON instead of text")
    parser.add_argument("--dry-run", action="store_true", help="replay: print what would be replayed, send nothing")
    parser.add_argument("--all", action="store_true", help="replay: allow replaying without --reason or --since")


@dataclass(frozen=True)
class DeadLetter:
    """One entry of the dead-letter topic, with its dlq.* headers parsed."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str:
        for k, v in self.headers:
            if k == name:
                return v.decode("utf-8", "replace")
        return ""

    @property
    def reason(self) -> str:
        return self.header(dlq.REASON) or "unknown"

    @property
    def failed_at_ms(self) -> int:
        text = self.header(dlq.FAILED_AT_MS)
        return int(text) if text.isdigit() else self.timestamp_ms

    @property
    def source(self) -> tuple[str, int, int] | None:
        topic = self.header(dlq.SOURCE_TOPIC)
        partition, offset = self.header(dlq.SOURCE_PARTITION), self.header(dlq.SOURCE_OFFSET)
        if not topic or not partition.lstrip("-").isdigit() or not offset.isdigit():
            return None
        return topic, int(partition), int(offset)

    def replay_headers(self) -> list[tuple[str, bytes]]:
        kept = [(k, v) for k, v in self.headers if not k.startswith("dlq.")]
        return kept + [(REPLAYED_FROM, f"{self.partition}:{self.offset}".encode())]

    def summary(self, show_content: bool) -> dict[str, Any]:
        source = self.source
        entry: dict[str, Any] = {
            "dlq_partition": self.partition,
            "dlq_offset": self.offset,
            "failed_at": _iso(self.failed_at_ms),
            "reason": self.reason,
            "source_topic": source[0] if source else None,
            "source_partition": source[1] if source else None,
            "source_offset": source[2] if source else None,
            "key_bytes": len(self.key or b""),
            "value_bytes": len(self.value or b""),
        }
        if show_content:
            entry["key"] = (self.key or b"").decode("utf-8", "replace")
            entry["value_hex"] = (self.value or b"").hex()
            entry["detail"] = self.header(dlq.DETAIL)
        return entry


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``2h``/``90m``/``1d``/``30s`` back from now, or an ISO time (naive means UTC)."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(text.strip())
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--since: {text!r} is neither an ISO time nor a duration like 2h") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def read_dead_letters(settings: Settings, timeout_s: float = 30.0) -> list[DeadLetter]:
    """Every entry of the dead-letter topic, oldest first per partition."""
    return list(_read_all(settings, settings.dlq_topic, timeout_s))


def _read_all(settings: Settings, topic: str, timeout_s: float) -> Iterator[DeadLetter]:
    with reaching_broker(settings):
        consumer = KafkaConsumer(**settings.kafka_consumer_options(), group_id=None, enable_auto_commit=False,
                                 client_id="ordernotify-dlq-reader")
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    yield DeadLetter(r.partition, r.offset, r.timestamp, r.key, r.value,
                                     tuple((k, v or b"") for k, v in (r.headers or [])))
            # An empty poll alone could be a slow fetch; end offsets alone can read low on the dev
            # broker (consumers/decide/lag.py): done when both say so.
            if not batch and all(consumer.position(tp) >= ends[tp] for tp in tps):
                return
    finally:
        close_consumer(consumer)


def select(entries: list[DeadLetter], reasons: list[str] | None, since: datetime | None) -> list[DeadLetter]:
    since_ms = int(since.timestamp() * 1000) if since else None
    return [
        e for e in entries
        if (not reasons or e.reason in reasons) and (since_ms is None or e.failed_at_ms >= since_ms)
    ]


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        since = parse_since(args.since) if args.since else None
    except argparse.ArgumentTypeError as exc:
        print(f"dlq: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    if args.action == "replay" and not (args.reason or since or args.all):
        print("dlq replay: pass --reason and/or --since (or --all to replay every entry)", file=sys.stderr)
        return ExitCode.USAGE
    try:
        entries = select(read_dead_letters(settings), args.reason, since)
    except KafkaError as exc:
        print(f"ordernotify: dlq: cannot read {settings.dlq_topic} at {settings.bootstrap_servers}: "
              f"{kafka_error_text(exc)}", file=sys.stderr)
        return for_kafka_error(exc)
    if args.action == "list":
        return _list(entries, settings, args)
    return _replay(entries, settings, args.dry_run)


def _list(entries: list[DeadLetter], settings: Settings, args: argparse.Namespace) -> int:
    counts = Counter(e.reason for e in entries)
    newest = sorted(entries, key=lambda e: (e.failed_at_ms, e.partition, e.offset), reverse=True)[: max(0, args.limit)]
    if args.json:
        print(json.dumps({
            "topic": settings.dlq_topic,
            "total": len(entries),
            "by_reason": dict(counts.most_common()),
            "newest": [e.summary(args.show_content) for e in newest],
        }, indent=2))
        return 0
    print(f"{settings.dlq_topic}: {len(entries)} dead letter(s)")
    for reason, count in counts.most_common():
        print(f"  {reason:<28} {count}")
    if newest:
        print(f"newest {len(newest)}:")
    for e in newest:
        s = e.summary(args.show_content)
        where = f"{s['source_topic']}[{s['source_partition']}]@{s['source_offset']}" if e.source else "(no source)"
        print(f"  {s['failed_at']}  {e.reason:<24} {where}  key {s['key_bytes']} B, value {s['value_bytes']} B"
              f"  (dlq[{e.partition}]@{e.offset})")
        if args.show_content:
            print(f"      key: {s['key']!r}\n      detail: {s['detail']}\n      value: {s['value_hex']}")
    return 0


def _replay(entries: list[DeadLetter], settings: Settings, dry_run: bool) -> int:
    replayable = [e for e in entries if e.source is not None]
    skipped = len(entries) - len(replayable)
    if skipped:
        print(f"dlq replay: skipping {skipped} entries without dlq.source.* headers", file=sys.stderr)
    if dry_run:
        for e in replayable:
            topic, partition, offset = e.source or ("", 0, 0)
            print(f"would replay dlq[{e.partition}]@{e.offset} ({e.reason}) -> {topic} (was [{partition}]@{offset})")
        print(f"dry run: {len(replayable)} entries would be replayed")
        return 0
    with reaching_broker(settings):
        producer = KafkaProducer(**settings.kafka_producer_options(), acks="all", client_id="ordernotify-dlq-replay")
    replayed: Counter[str] = Counter()
    try:
        for e in sorted(replayable, key=lambda e: (e.partition, e.offset)):
            topic = e.source[0] if e.source else ""
            producer.send(topic, key=e.key, value=e.value, headers=e.replay_headers()).get(settings.produce_timeout_s)
            replayed[topic] += 1
    except KafkaError as exc:
        print(f"dlq replay: stopped after {sum(replayed.values())}: {exc}", file=sys.stderr)
        return 1
    finally:
        producer.close(timeout=10)
    for topic, count in sorted(replayed.items()):
        print(f"replayed {count} to {topic}")
    print(f"replayed {sum(replayed.values())} entries")
    return 0


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
