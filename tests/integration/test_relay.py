"""``ordernotify relay`` as a real process on the real broker: JSON events on a staging topic in, Avro events on
the events topic and dead letters out, offsets committed; killed mid-stream, no event lost."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from cli.main import _commands, main
from devstack.ports import free_port
from ordernotify.config import Secret, Settings, flag_name
from ordernotify.kafka_closing import close_admin, close_consumer
from schemas.codec import EventCodec
from schemas.records import to_json_record
from tests import factories as f
from tests.kafka_reading import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 3


@pytest.fixture
def relay_settings(settings: Settings) -> Settings:
    """The test's topics plus a staging topic and relay group of its own; a short session, so that the dev
    broker admits a restarted relay after about a second."""
    relay = dataclasses.replace(settings, relay_topic=f"{settings.events_topic}.json",
                                relay_group_id=f"{settings.group_id}-relay", session_timeout_ms=2000)
    admin = KafkaAdminClient(**relay.kafka_client_options(), client_id="test-admin")
    try:
        admin.create_topics([NewTopic(relay.relay_topic, PARTITIONS, 1)])
    finally:
        close_admin(admin)
    return relay


def _relay_command(settings: Settings) -> list[str]:
    """Every setting the relay reads as a flag, so it runs with these settings whatever the environment."""
    groups = set(_commands()["relay"].settings)
    args = []
    for field in dataclasses.fields(Settings):
        value = getattr(settings, field.name)
        if field.metadata["group"] not in groups or isinstance(value, Secret):
            continue
        if isinstance(value, bool):
            args.append(flag_name(field.name) if value else "--no-" + field.name.replace("_", "-"))
        else:
            args += [flag_name(field.name), str(value)]
    return [sys.executable, "-m", "cli", "relay", *args]


class RelayProcess:
    def __init__(self, settings: Settings, log_path: Path, max_poll_records: int = 50) -> None:
        self._command = _relay_command(settings)
        # The group's tuning is shared with the consumers and read from the environment here.
        self._env = {**{k: v for k, v in os.environ.items() if not k.startswith("ORDERNOTIFY_")},
                     "ORDERNOTIFY_SESSION_TIMEOUT_MS": str(settings.session_timeout_ms),
                     "ORDERNOTIFY_MAX_POLL_RECORDS": str(max_poll_records)}
        self._log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RelayProcess:
        with open(self._log_path, "ab") as out:
            self.process = subprocess.Popen(self._command, cwd=ROOT, env=self._env, stdout=out,
                                            stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout_s: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout_s)


def _stage(settings: Settings, values: list[tuple[str, bytes]]) -> None:
    """What Debezium's outbox router writes: key = order id, value = the payload's JSON text."""
    producer = KafkaProducer(**settings.kafka_client_options(), acks="all", linger_ms=20)
    try:
        futures = [producer.send(settings.relay_topic, key=key.encode(), value=value,
                                 headers=[("id", b"-"), ("event_type", b"-")]) for key, value in values]
        producer.flush(60)
        for future in futures:
            future.get(1)
    finally:
        producer.close(10)


def _payload(event: Any) -> bytes:
    return json.dumps(to_json_record(event), ensure_ascii=False).encode()


def _event_ids_on_events_topic(settings: Settings, expected: int, timeout_s: float) -> list[str]:
    codec = EventCodec()
    return [codec.decode(r.value).event_id for r in read_topic(settings, settings.events_topic, expected, timeout_s)]


def _wait_for_distinct(settings: Settings, wanted: set[str], timeout_s: float) -> set[str]:
    deadline = time.monotonic() + timeout_s
    seen: set[str] = set()
    while time.monotonic() < deadline:
        seen = set(_event_ids_on_events_topic(settings, expected=0, timeout_s=1.0))
        if wanted <= seen:
            break
    return seen


def _sent(port: int) -> float:
    """The relay's own count of events handed to the producer since it started (0 until it serves /metrics)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as answer:
            text = answer.read().decode()
    except OSError:
        return 0
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("ordernotify_producer_events_sent_total{"))


def _committed(settings: Settings) -> dict[int, int | None]:
    consumer = KafkaConsumer(**settings.kafka_client_options(), group_id=settings.relay_group_id,
                             enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(settings.relay_topic, p)) for p in range(PARTITIONS)}
    finally:
        close_consumer(consumer, autocommit=False)


def test_valid_events_are_relayed_bad_ones_dead_lettered_and_the_offsets_committed(
    relay_settings: Settings, tmp_path: Path
) -> None:
    settings = relay_settings
    valid = [f.placed_event(order_id=f"RL-{n}") for n in range(4)]
    negative = json.loads(_payload(f.placed_event(order_id="RL-9")))
    negative["payload"]["items"][0]["unit_price"]["amount_minor"] = -1
    bad = [("RL-7", b'{"event_id": "no closing brace"'), ("RL-9", json.dumps(negative).encode())]
    _stage(settings, [(e.order_id, _payload(e)) for e in valid[:2]] + bad
           + [(e.order_id, _payload(e)) for e in valid[2:]])

    with RelayProcess(settings, tmp_path / "relay.log") as relay:
        ids = _wait_for_distinct(settings, {e.event_id for e in valid}, timeout_s=60)
        dead = read_topic(settings, settings.dlq_topic, expected=2, timeout_s=30)
        relay.signal(signal.SIGTERM)
        assert relay.wait(30) == 0

    assert ids == {e.event_id for e in valid}
    by_value = {r.value: dict(r.headers) for r in dead}
    assert set(by_value) == {value for _, value in bad}  # the original bytes
    assert by_value[bad[0][1]]["dlq.reason"] == b"undecodable"
    assert by_value[bad[1][1]]["dlq.reason"] == b"invalid_event"
    assert b"payload.items[0].unit_price.amount_minor" in by_value[bad[1][1]]["dlq.detail"]
    assert {h["dlq.source.topic"] for h in by_value.values()} == {settings.relay_topic.encode()}

    staged = read_topic(settings, settings.relay_topic, expected=6)
    last = {p: max(r.offset for r in staged if r.partition == p) + 1
            for p in {r.partition for r in staged}}
    committed = _committed(settings)
    assert {p: committed[p] for p in last} == last

    listed = io.StringIO()
    with redirect_stdout(listed):
        assert main(["dlq", "list", "--json", "--bootstrap-servers", settings.bootstrap_servers,
                     "--dlq-topic", settings.dlq_topic]) == 0
    assert '"invalid_event"' in listed.getvalue() and '"undecodable"' in listed.getvalue()
    log = (tmp_path / "relay.log").read_text(errors="replace")
    assert log.count(" dead-lettered ") == 2  # one line each
    assert "ada@example.org" not in log


def test_a_relay_killed_mid_stream_and_restarted_loses_no_event(relay_settings: Settings, tmp_path: Path) -> None:
    settings = relay_settings
    chunks = [[f.placed_event(order_id=f"RK-{n:04d}") for n in range(start, start + 500)]
              for start in range(0, 2000, 500)]
    sent = {e.event_id for chunk in chunks for e in chunk}
    rng, log, unfinished = random.Random(7), tmp_path / "relay.log", 0
    for chunk in chunks:
        _stage(settings, [(e.order_id, _payload(e)) for e in chunk])  # the stream goes on between kills
        port = free_port()
        with RelayProcess(dataclasses.replace(settings, metrics_port=port), log, max_poll_records=5) as relay:
            at = rng.randint(1, len(chunk) - 50)  # a random moment while it relays: after this many sends
            deadline = time.monotonic() + 30
            while _sent(port) < at:
                assert time.monotonic() < deadline, "the relay did not relay"
                time.sleep(0.005)
            relay.signal(signal.SIGKILL)
            relay.wait(10)
        wanted = {e.event_id for e in chunk}
        unfinished += not wanted <= set(_event_ids_on_events_topic(settings, expected=0, timeout_s=0.5))
    with RelayProcess(settings, log) as relay:
        seen = _wait_for_distinct(settings, sent, timeout_s=90)
        relay.signal(signal.SIGTERM)
        assert relay.wait(30) == 0
    ids = _event_ids_on_events_topic(settings, expected=len(sent), timeout_s=10)
    print(f"{len(ids)} records for {len(sent)} events after 4 kills, {unfinished} in mid-stream "
          f"({len(ids) - len(set(ids))} copies)")
    assert unfinished, "no kill came while events of its chunk were still to be relayed"
    assert seen == sent and set(ids) == sent  # every event at least once, nothing else
    assert read_topic(settings, settings.dlq_topic, expected=0, timeout_s=1) == []
