"""``ordernotify history --order ID`` as an operator runs it: one order's records from the real log topic, in time
order, with why news was not sent, and nothing of other orders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from cli.history import partition_for
from ordernotify.config import Settings
from schemas.codec import AvroCodec
from schemas.registry import NOTIFICATION_SENT

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2025, 3, 10, 9, 15, 0, tzinfo=UTC)
ORDER = "ORD-1001"


def _history(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERNOTIFY_")}
    return subprocess.run(
        [sys.executable, "-m", "cli", "history", *args, "--bootstrap-servers",
         settings.bootstrap_servers, "--sent-topic", settings.sent_topic],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env,
    )


def _record(order_id: str, outcome: str, at: datetime, event_ids: list[str], **fields: Any) -> dict[str, Any]:
    return {"order_id": order_id, "customer_id": "cust-1", "outcome": outcome, "reason": None, "template": None,
            "locale": None, "subject": None, "message_id": None, "event_ids": event_ids, "recorded_at": at, **fields}


def _other_order_in_the_same_partition(partitions: list[int]) -> str:
    """An order id whose records share ORDER's partition, so the command must filter, not just pick a partition."""
    target = partition_for(ORDER.encode(), partitions)
    for i in range(1000):
        candidate = f"ORD-{2000 + i}"
        if partition_for(candidate.encode(), partitions) == target:
            return candidate
    raise AssertionError("no order id found in the same partition")


@pytest.fixture(params=["record by record", "one batch"])
def published(request: pytest.FixtureRequest, settings: Settings) -> dict[str, Any]:
    """Three records of ORDER (published out of time order) and one of another order in the same partition.

    "one batch" puts all four in one produce batch: the dev broker then reports the partition's end offset
    too low, and the command must still read every record."""
    batched = request.param == "one batch"
    ids = [str(uuid.uuid4()) for _ in range(4)]
    codec = AvroCodec(NOTIFICATION_SENT)
    producer = KafkaProducer(**settings.kafka_client_options(), linger_ms=500 if batched else 0)
    try:
        partitions = sorted(producer.partitions_for(settings.sent_topic))
        other = _other_order_in_the_same_partition(partitions)
        records = [
            _record(ORDER, "SENT", T0, [ids[0]], template="order_placed", locale="en",
                    subject="Thank you for your order, Ada", message_id="<placed-1001@shop.example>"),
            _record(ORDER, "SENT", T0 + timedelta(hours=30), [ids[1], ids[2]], template="delivered", locale="en",
                    subject="Your order has arrived", message_id="<delivered-1001@shop.example>"),
            _record(ORDER, "NOT_SENT", T0 + timedelta(hours=20), [ids[1]], reason="opted_out",
                    template="shipped"),
            _record(other, "SENT", T0 + timedelta(minutes=1), [ids[3]], template="order_placed", locale="en",
                    subject="Thank you for your order, Grace", message_id="<placed-other@shop.example>"),
        ]
        futures = []
        for r in records:
            futures.append(producer.send(settings.sent_topic, key=r["order_id"].encode(), value=codec.encode(r)))
            if not batched:
                futures[-1].get(timeout=15)
        producer.flush(15)
        landed = [future.get(timeout=15) for future in futures]
    finally:
        producer.close()
    expected = partition_for(ORDER.encode(), partitions)
    assert {meta.partition for meta in landed} == {expected}  # the command's formula is the producer's
    if batched:
        assert [meta.offset for meta in landed] == [0, 1, 2, 3]
    return {"ids": ids, "other": other}


def test_history_prints_the_orders_communications_in_time_order_with_reasons(
    settings: Settings, published: dict[str, Any]
) -> None:
    result = _history(settings, "--order", ORDER)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["TIME", "(UTC)", "OUTCOME", "TEMPLATE", "SUBJECT", "MESSAGE-ID", "EVENTS"]
    rows = lines[1:]
    assert len(rows) == 3
    ids = [event_id[:8] for event_id in published["ids"]]
    assert rows[0].startswith("2025-03-10T09:15:00Z  sent ")
    assert "order_placed" in rows[0] and "Thank you for your order, Ada" in rows[0]
    assert "<placed-1001@shop.example>" in rows[0] and rows[0].endswith(ids[0])
    assert rows[1].startswith("2025-03-11T05:15:00Z  not sent: opted_out ")
    assert "shipped" in rows[1] and rows[1].endswith(ids[1])
    assert rows[2].startswith("2025-03-11T15:15:00Z  sent ")
    assert "delivered" in rows[2] and rows[2].endswith(f"{ids[1]} {ids[2]}")
    assert published["ids"][0] not in result.stdout  # event ids are shortened
    assert "Grace" not in result.stdout and published["other"] not in result.stdout
    assert "ada@" not in result.stdout.lower()


def test_history_json_lists_the_same_records_with_full_event_ids(
    settings: Settings, published: dict[str, Any]
) -> None:
    result = _history(settings, "--order", ORDER, "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["order_id"] == ORDER
    assert [(c["outcome"], c["reason"], c["template"]) for c in document["communications"]] == [
        ("sent", None, "order_placed"), ("not_sent", "opted_out", "shipped"), ("sent", None, "delivered"),
    ]
    assert document["communications"][2]["event_ids"] == published["ids"][1:3]


def test_history_of_an_order_without_records_says_so(settings: Settings, published: dict[str, Any]) -> None:
    result = _history(settings, "--order", "ORD-NOTHING")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no communications recorded for order ORD-NOTHING"
