"""One end-to-end run: a fresh broker and state store, a backlog of events, consumer process(es), a sink.

The consumers are separate processes (``ordernotify consume``, or the naive or tuned loop), so the CPU time and
memory read from /proc are theirs alone. Throughput is read from the sink's counter: the sustained
rate is taken between the 10th and the 90th percentile of the e-mails (start-up and group join, and
the tail where partitions run dry, are left out); CPU per e-mail over the same span.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from bench.events import Encoded, produce_backlog
from bench.sinks import Sink
from bench.stages import postgres_schema_url
from bench.timing import ProcSample, sample_tree
from consumers.state.store import StateStore
from devstack.broker import EmbeddedBroker
from ordernotify.config import Settings, env_name
from ordernotify.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 6
BASELINES = ("naive", "tuned")  # modules of bench/ run with the same arguments


@dataclass
class Run:
    """What to run: ``consumer`` is "ordernotify", "naive" or "tuned" (the baselines, ``bench/naive.py`` and
    ``bench/tuned.py``); ``settings`` are ordernotify settings overrides."""

    name: str
    consumer: str = "ordernotify"
    sink: str = "smtp-sink"
    processes: int = 1
    store: str = "sqlite"
    settings: dict[str, Any] = field(default_factory=dict)
    expect_emails: int | None = None  # None: mixed stream, finished when every offset is committed
    timeout_s: float = 600.0


@contextlib.contextmanager
def stack(run: Run, records: list[Encoded]) -> Iterator[tuple[Settings, Sink, dict[str, str]]]:
    """Broker with the backlog produced, state store, sink; yields the consumers' settings and environment."""
    with contextlib.ExitStack() as exits, tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        broker = exits.enter_context(EmbeddedBroker())
        if run.store == "postgresql":
            state_url, drop = postgres_schema_url()
            exits.callback(drop)
            # Tables created once, before the consumers start: several consumers creating them at the same
            # moment on an empty schema crash with UniqueViolation (CREATE TABLE IF NOT EXISTS race).
            StateStore(state_url).close()
        else:
            state_url = f"sqlite:///{tmp}/state.db"
        sink = exits.enter_context(Sink(run.sink, Path(tmp) / "stamps.txt"))
        settings = Settings(
            bootstrap_servers=broker.bootstrap_servers, group_id=f"bench-{uuid.uuid4().hex[:8]}",
            session_timeout_ms=6000, state_url=state_url, smtp_host="127.0.0.1", smtp_port=sink.port,
            coalesce_window_s=1.0, metrics_port=0, log_level="WARNING",
        )
        ensure_topics(settings, partitions=PARTITIONS)
        produce_backlog(settings, records)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.update({env_name(k): str(getattr(settings, k)) for k in (
            "bootstrap_servers", "group_id", "session_timeout_ms", "state_url", "smtp_host", "smtp_port",
            "coalesce_window_s", "metrics_port", "log_level")})
        env.update({env_name(k): str(v) for k, v in run.settings.items()})
        yield settings, sink, env


def start_consumers(run: Run, settings: Settings, env: dict[str, str], stderr: Any) -> list[subprocess.Popen[bytes]]:
    if run.consumer in BASELINES:
        command = [sys.executable, "-m", f"bench.{run.consumer}", "--bootstrap-servers", settings.bootstrap_servers,
                   "--smtp-port", str(settings.smtp_port), "--group-id", settings.group_id,
                   "--topic", settings.events_topic]
    else:
        command = [sys.executable, "-m", "cli", "consume"]
    return [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
            for _ in range(run.processes)]


def stop_consumers(processes: list[subprocess.Popen[bytes]]) -> None:
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in processes:
        try:
            p.wait(40)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def start_py_spy(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    """Sample the consumer (and its render workers) at 100 Hz without pausing it, only while a thread holds the
    GIL (= Python CPU time)."""
    py_spy = Path(sys.executable).parent / "py-spy"
    return subprocess.Popen([str(py_spy), "record", "--pid", str(pid), "--duration", str(int(seconds)),
                             "--rate", "100", "--nonblocking", "--gil", "--subprocesses", "--format", "raw",
                             "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def committed_total(reader: KafkaConsumer, topic: str) -> int:
    """Sum of the group's committed offsets over the topic's partitions (= records done, offsets from 0)."""
    try:
        return sum(reader.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS))
    except Exception:  # the group may not exist yet
        return 0


@dataclass
class Trace:
    """Samples of the consumer processes over the run: (sink count, per-process samples). Each sample sums a
    consumer and its child processes (the render workers): their CPU and memory are the consumer's too."""

    points: list[tuple[int, list[ProcSample]]] = field(default_factory=list)

    def add(self, count: int, pids: list[int]) -> None:
        samples = [s for s in (sample_tree(pid) for pid in pids) if s is not None]
        if len(samples) == len(pids):
            self.points.append((count, samples))

    def cpu_per_email_ms(self, lo: int, hi: int) -> float:
        inside = [(c, s) for c, s in self.points if lo <= c <= hi]
        if len(inside) < 2 or inside[-1][0] == inside[0][0]:
            return float("nan")
        (c0, s0), (c1, s1) = inside[0], inside[-1]
        cpu = sum(b.cpu_s for b in s1) - sum(a.cpu_s for a in s0)
        return 1000 * cpu / (c1 - c0)

    def rss_mb_at(self, fraction: float, total: int) -> float:
        """Summed RSS of the consumer processes when ``fraction`` of the e-mails were accepted."""
        for count, samples in self.points:
            if count >= fraction * total:
                return round(sum(s.rss_kb for s in samples) / 1024, 1)
        return float("nan")

    def peak_rss_mb(self) -> float:
        if not self.points:
            return float("nan")
        return round(max(s.hwm_kb for _, samples in self.points for s in samples) / 1024, 1)


def run_e2e(run: Run, records: list[Encoded], log_dir: Path | None = None,
            profile: tuple[Path, float] | None = None) -> dict[str, Any]:
    """Run it; returns the figures (see the module docstring). ``profile``: (raw py-spy output, seconds)."""
    with stack(run, records) as (settings, sink, env):
        stderr = open(log_dir / f"{run.name}.stderr", "wb") if log_dir else subprocess.DEVNULL  # noqa: SIM115
        started = time.monotonic()
        processes = start_consumers(run, settings, env, stderr)
        trace = Trace()
        # Reads the group's commits without joining it (mixed streams: done when every record is committed).
        admin = (KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=settings.group_id,
                               enable_auto_commit=False) if run.expect_emails is None else None)
        n_events = len(records)
        all_committed_at = None
        last_change, last_count = time.monotonic(), 0
        spy: subprocess.Popen[bytes] | None = None
        try:
            while time.monotonic() - started < run.timeout_s:
                time.sleep(0.25)
                trace.add(sink.count, [p.pid for p in processes])
                if any(p.poll() is not None for p in processes):
                    break
                if profile is not None and spy is None and sink.count > n_events // 20:
                    spy = start_py_spy(processes[0].pid, *profile)
                if sink.count != last_count:
                    last_change, last_count = time.monotonic(), sink.count
                if run.expect_emails is not None:
                    if sink.count >= run.expect_emails:
                        break
                elif admin is not None:
                    if all_committed_at is None and committed_total(admin, settings.events_topic) >= n_events:
                        all_committed_at = time.monotonic()
                    # every event handled, and no e-mail for 3 s (windows flushed)
                    if all_committed_at is not None and time.monotonic() - last_change > 3.0:
                        break
                    if last_count and time.monotonic() - last_change > 20.0:  # stuck: report what was done
                        break
        finally:
            exit_codes = [p.poll() for p in processes]
            if spy is not None:
                spy.wait(profile[1] + 30 if profile else 30)
            stop_consumers(processes)
            if admin is not None:
                admin.close(autocommit=False)
            if log_dir:
                stderr.close()
        emails = sink.count
        result: dict[str, Any] = {
            "name": run.name, "consumer": run.consumer, "sink": run.sink, "processes": run.processes,
            "store": run.store, "settings": run.settings, "events": n_events, "emails": emails,
            "died": [c for c in exit_codes if c is not None],
            "wall_s": round(time.monotonic() - started, 1),
        }
        if emails < 20:
            result["error"] = f"only {emails} e-mails accepted"
            return result
        lo, hi = max(1, emails // 10), emails * 9 // 10
        rate = sink.rate(lo, hi)
        result.update({
            "emails_per_s": round(rate, 1),
            "cpu_ms_per_email": round(trace.cpu_per_email_ms(lo, hi), 3),
            "peak_rss_mb": trace.peak_rss_mb(),
            "rss_mb_at_20pct": trace.rss_mb_at(0.2, emails),
            "rss_mb_at_100pct": trace.rss_mb_at(0.99, emails),
            "first_email_after_s": round(sink.time_of(1) - started, 2),
        })
        if run.expect_emails is None:  # mixed: events per second over the whole span of sending
            span = (all_committed_at or sink.time_of(emails)) - sink.time_of(1)
            result["events_per_s"] = round(n_events / span, 1) if span > 0 else float("nan")
            result["all_committed"] = all_committed_at is not None
        else:
            result["events_per_s"] = result["emails_per_s"]
        return result
