"""``ordernotify dlq list|replay`` against the real broker, on this test's own topics."""

from __future__ import annotations

import json
import time

import pytest
from kafka import KafkaProducer

from cli.main import main
from consumers import dead_letters as dlq
from ordernotify.config import Settings
from tests.kafka_reading import read_topic

pytestmark = pytest.mark.integration

PERSONAL = b"zoe@example.org"


def _flags(settings: Settings) -> list[str]:
    return ["--bootstrap-servers", settings.bootstrap_servers, "--events-topic", settings.events_topic,
            "--dlq-topic", settings.dlq_topic]


def _dead_letter(settings: Settings, key: bytes, reason: str, age_s: float, source_partition: int,
                 source_offset: int) -> tuple[str, bytes | None, list[tuple[str, bytes]]]:
    headers = [
        ("event_type", b"ORDER_SHIPPED"),
        (dlq.REASON, reason.encode()),
        (dlq.DETAIL, b"550 5.1.1 <" + PERSONAL + b">: no such user"),
        (dlq.SOURCE_TOPIC, settings.events_topic.encode()),
        (dlq.SOURCE_PARTITION, str(source_partition).encode()),
        (dlq.SOURCE_OFFSET, str(source_offset).encode()),
        (dlq.FAILED_AT_MS, str(int((time.time() - age_s) * 1000)).encode()),
    ]
    return settings.dlq_topic, b"value of " + key + b" for " + PERSONAL, headers


@pytest.fixture
def dead_letters(settings: Settings) -> dict[bytes, str]:
    """Three dead letters: two render failures (one three hours old), one undecodable record."""
    entries = {b"A-1": ("render_failed", 3 * 3600.0, 0, 5), b"A-2": ("render_failed", 600.0, 1, 7),
               b"A-3": ("undecodable", 300.0, 2, 9)}
    producer = KafkaProducer(**settings.kafka_client_options(), acks="all")
    try:
        for key, (reason, age, partition, offset) in entries.items():
            topic, value, headers = _dead_letter(settings, key, reason, age, partition, offset)
            producer.send(topic, key=key, value=value, headers=headers).get(10)
    finally:
        producer.close()
    return {key: reason for key, (reason, *_rest) in entries.items()}


def test_list_counts_by_reason_without_showing_content(
    settings: Settings, dead_letters: dict[bytes, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dlq", "list", *_flags(settings)]) == 0
    out = capsys.readouterr().out
    assert f"{settings.dlq_topic}: 3 dead letter(s)" in out
    assert "render_failed                2" in out and "undecodable                  1" in out
    assert f"{settings.events_topic}[1]@7" in out  # where it came from
    assert "key 3 B" in out
    assert "zoe@example.org" not in out and "A-1" not in out and "no such user" not in out


def test_list_json_newest_first_and_since_filter(
    settings: Settings, dead_letters: dict[bytes, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dlq", "list", "--json", "--since", "2h", *_flags(settings)]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["total"] == 2
    assert listing["by_reason"] == {"render_failed": 1, "undecodable": 1}
    assert [(e["reason"], e["source_offset"]) for e in listing["newest"]] == [("undecodable", 9), ("render_failed", 7)]
    assert "key" not in listing["newest"][0] and "detail" not in listing["newest"][0]


def test_show_content_prints_key_and_detail_when_asked(
    settings: Settings, dead_letters: dict[bytes, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dlq", "list", "--show-content", "--reason", "undecodable", *_flags(settings)]) == 0
    out = capsys.readouterr().out
    assert "key: 'A-3'" in out and "no such user" in out
    assert "A-1" not in out  # filtered out by reason


def test_replay_by_reason_puts_exactly_the_matching_records_back(
    settings: Settings, dead_letters: dict[bytes, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dlq", "replay", "--reason", "render_failed", "--dry-run", *_flags(settings)]) == 0
    assert "dry run: 2 entries would be replayed" in capsys.readouterr().out

    assert main(["dlq", "replay", "--reason", "render_failed", *_flags(settings)]) == 0
    out = capsys.readouterr().out
    assert f"replayed 2 to {settings.events_topic}" in out

    replayed = read_topic(settings, settings.events_topic, expected=2)
    assert sorted(r.key for r in replayed) == [b"A-1", b"A-2"]  # the dry run sent nothing
    for record in replayed:
        assert record.value == b"value of " + record.key + b" for " + PERSONAL
        headers = dict(record.headers)
        assert headers["event_type"] == b"ORDER_SHIPPED"
        assert not any(k.startswith("dlq.") and k != "dlq.replayed_from" for k in headers)
        partition, offset = headers["dlq.replayed_from"].decode().split(":")
        assert int(partition) >= 0 and int(offset) >= 0


def test_replay_without_a_filter_is_refused(
    settings: Settings, dead_letters: dict[bytes, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dlq", "replay", *_flags(settings)]) == 2
    assert "--reason" in capsys.readouterr().err


def test_bad_since_is_reported(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", "list", "--since", "yesterday-ish", *_flags(settings)]) == 2
    assert "neither an ISO time nor a duration" in capsys.readouterr().err
