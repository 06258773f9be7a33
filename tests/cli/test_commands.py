"""The ``ordernotify`` commands as a user runs them: separate processes, real broker and SMTP server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ordernotify.config import Settings
from tests.kafka_reading import read_topic

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _ordernotify(*args: str, stdin: str | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERNOTIFY_")}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        input=stdin, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env,
    )


def _kafka_flags(settings: Settings) -> list[str]:
    return ["--bootstrap-servers", settings.bootstrap_servers, "--events-topic", settings.events_topic,
            "--preferences-topic", settings.preferences_topic]


def test_demo_sends_every_email_within_a_minute_and_leaves_no_process(tmp_path: Path) -> None:
    started = time.monotonic()
    result = _ordernotify("demo", "--orders", "8", "--outbox", str(tmp_path / "outbox"))
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-2000:]
    assert elapsed < 60
    sent = int(re.search(r"sent (\d+) e-mails", result.stdout).group(1))  # type: ignore[union-attr]
    produced = int(re.search(r"produced (\d+) events", result.stdout).group(1))  # type: ignore[union-attr]
    assert produced >= 8 * 3
    assert 8 <= sent < produced  # every order confirmed; related news merged into fewer e-mails
    assert "'order_placed': 8" in result.stdout
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == sent
    index = (tmp_path / "outbox" / "index.html").read_text(encoding="utf-8")
    assert all(f'href="{eml.name}"' in index for eml in (tmp_path / "outbox").glob("*.eml"))
    port = re.search(r"Kafka at 127\.0\.0\.1:(\d+)", result.stdout).group(1)  # type: ignore[union-attr]
    leftovers = subprocess.run(["pgrep", "-f", f"listener-url tcp://127.0.0.1:{port}"], capture_output=True)
    assert leftovers.stdout == b"", "the demo left its broker running"


def test_emit_sends_the_documented_examples(settings: Settings) -> None:
    examples = ROOT / "schemas" / "examples" / "events.jsonl"
    lines = [line for line in examples.read_text().splitlines() if line.strip()]
    result = _ordernotify("emit", str(examples), *_kafka_flags(settings))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": sent") == len(lines)
    events = read_topic(settings, settings.events_topic, expected=len(lines) - 1)
    assert len(events) == len(lines) - 1  # one example line is a preferences update
    assert len(read_topic(settings, settings.preferences_topic, expected=1)) == 1
    assert all(record.key for record in events)


def test_emit_refuses_bad_lines_names_the_problem_and_sends_nothing_for_them(settings: Settings) -> None:
    bad = (ROOT / "schemas" / "examples" / "bad.jsonl").read_text()
    result = _ordernotify("emit", "-", *_kafka_flags(settings), stdin=bad)
    assert result.returncode == 1
    refusals = [line for line in result.stderr.splitlines() if ": refused:" in line]
    assert len(refusals) == len([line for line in bad.splitlines() if line.strip()])
    assert any("quantity" in line and "positive" in line for line in refusals)
    assert any("event_type" in line for line in refusals)
    assert read_topic(settings, settings.events_topic, expected=0, timeout_s=2) == []
