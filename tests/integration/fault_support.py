"""What the fault tests share: a consumer as a real process, a stream of orders, the tally, the report.

Each fault test produces ORDER_PLACED events (one e-mail each, sent at once,
never merged), lets a fault happen, and then counts the e-mails the SMTP server
accepted by order id: lost = expected orders without an e-mail, duplicated =
e-mails beyond the first per order. Its row goes to :func:`results_file`, which
``tests/conftest.py`` prints as a table at the end of the run and copies to a
``faults.json`` beside it (a temporary directory: tests write nothing into the checkout).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaProducer

from devstack.smtp_capture import CapturedMessage
from ordernotify.config import Secret, Settings, flag_name
from schemas.codec import EventCodec
from tests import factories

ROOT = Path(__file__).resolve().parents[2]
_ORDER = re.compile(rb"^Subject: Your order (F[0-9A-Z]+-\d+)", re.MULTILINE)  # raw bytes: parsing 2,000 is slow


@dataclass(frozen=True)
class FaultResult:
    scenario: str
    events: int
    expected: int
    received: int
    lost: int
    duplicated: int
    dead_lettered: int
    recovery_s: float | None
    note: str = ""


# Rows go to a file, not a list: with pytest-xdist the tests run in worker processes and the table is
# printed by the controller (tests/conftest.py), which names the file, in a temporary directory of the
# session's own, before the workers start (they inherit the variable).
RESULTS_VARIABLE = "ORDERNOTIFY_TEST_FAULTS_FILE"


def results_file() -> Path:
    named = os.environ.get(RESULTS_VARIABLE)
    return Path(named) if named else Path(tempfile.gettempdir()) / "ordernotify-faults.jsonl"


def record(result: FaultResult) -> FaultResult:
    with results_file().open("a", encoding="utf-8") as out:
        out.write(json.dumps(dataclasses.asdict(result)) + "\n")
    print(f"\n{result}")
    return result


def recorded() -> list[FaultResult]:
    path = results_file()
    if not path.exists():
        return []
    return [FaultResult(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line]


# -- the stream ------------------------------------------------------------------------------------

def order_ids(prefix: str, count: int, start: int = 0) -> list[str]:
    return [f"{prefix}-{n:05d}" for n in range(start, start + count)]


def produce_orders(settings: Settings, ids: list[str]) -> None:
    """One ORDER_PLACED per id, keyed by order, acknowledged by the broker before returning."""
    codec = EventCodec()
    producer = KafkaProducer(**settings.kafka_client_options(), acks="all", linger_ms=20)
    try:
        futures = [producer.send(settings.events_topic, key=i.encode(), value=codec.encode(factories.placed_event(
            order_id=i))) for i in ids]
        producer.flush(60)
        for future in futures:
            future.get(1)
    finally:
        producer.close(10)


@dataclass(frozen=True)
class Tally:
    expected: int
    received: int
    lost: int
    duplicated: int
    by_order: Counter[str]

    @classmethod
    def of(cls, messages: list[CapturedMessage], ids: list[str]) -> Tally:
        by_order: Counter[str] = Counter()
        for message in messages:
            match = _ORDER.search(message.data)
            by_order[match.group(1).decode() if match else "?"] += 1
        wanted = set(ids)
        lost = sum(1 for i in wanted if by_order[i] == 0)
        duplicated = sum(n - 1 for i, n in by_order.items() if i in wanted and n > 1)
        return cls(len(wanted), len(messages), lost, duplicated, by_order)


def wait_for_orders(messages: Any, ids: list[str], timeout_s: float) -> Tally:
    """Until every order has its e-mail or the time is up; then a short grace for late duplicates."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tally = Tally.of(list(messages()), ids)
        if tally.lost == 0:
            break
        time.sleep(0.2)
    time.sleep(1.0)
    return Tally.of(list(messages()), ids)


# -- a consumer as a real process ------------------------------------------------------------------

def consume_args(settings: Settings) -> list[str]:
    """Every setting ``consume`` reads as a flag, so the process runs with exactly these settings whatever the
    environment."""
    from cli.main import _commands

    groups = set(_commands()["consume"].settings)
    args: list[str] = []
    for f in dataclasses.fields(Settings):
        if f.metadata["group"] not in groups:
            continue
        value = getattr(settings, f.name)
        if isinstance(value, Secret):
            continue
        if isinstance(value, bool):
            args.append(flag_name(f.name) if value else "--no-" + f.name.replace("_", "-"))
        else:
            args += [flag_name(f.name), str(value)]
    return args


class ConsumerProcess:
    """``python -m cli consume`` with the test's settings; output goes to ``log_path``."""

    def __init__(self, settings: Settings, log_path: Path, extra: list[str] | None = None) -> None:
        self._command = [sys.executable, "-m", "cli", "consume", *consume_args(settings), *(extra or [])]
        self._log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ConsumerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERNOTIFY_")}
        with open(self._log_path, "ab") as out:
            self.process = subprocess.Popen(self._command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(sig)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def wait(self, timeout_s: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout_s)

    def cpu_seconds(self) -> float:
        """User + system CPU time so far (Linux /proc), for busy-loop checks."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def __enter__(self) -> ConsumerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


def log_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
