"""How fast ``ordernotify emit`` publishes a file: ``python -m bench.emit_throughput [--lines 5000] [--repeats 3]``.

Starts the embedded broker, writes a file of valid ORDER_PLACED lines (several locales and currencies) to a
temporary directory and runs the real command, ``python -m cli emit FILE``, as its own process, once per window
(``--window 1`` is one acknowledgement at a time, the command's behaviour before pipelining) and ``repeats`` times
each, every run on a fresh topic. Reported: the command's wall time (process start included: what a user waits
for) and events/s = lines / wall time, median of the repeats; beside it, one kafka-python producer putting the same
pre-encoded records into the same broker (no parsing, validation or encoding), the ceiling of the broker here.
Prints a Markdown table; nothing is written to the checkout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.events import encode, placed_events, produce_backlog
from bench.timing import median
from devstack.broker import EmbeddedBroker
from ordernotify.config import Settings
from ordernotify.topics import ensure_topics
from schemas.records import to_json_record

ROOT = Path(__file__).resolve().parent.parent


def write_lines(path: Path, lines: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for event in placed_events(lines):
            out.write(json.dumps(to_json_record(event), ensure_ascii=False) + "\n")


def _fresh(settings: Settings) -> Settings:
    run = uuid.uuid4().hex[:8]
    fresh = dataclasses.replace(settings, events_topic=f"bench.emit.{run}", preferences_topic=f"bench.prefs.{run}",
                                sent_topic=f"bench.sent.{run}", dlq_topic=f"bench.dlq.{run}")
    ensure_topics(fresh)
    return fresh


def emit_once(settings: Settings, path: Path, window: int, lines: int) -> float:
    """One run of the command; returns its wall time in seconds (raises if it did not send every line)."""
    command = [sys.executable, "-m", "cli", "emit", str(path), "--window", str(window),
               "--bootstrap-servers", settings.bootstrap_servers, "--events-topic", settings.events_topic]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
    elapsed = time.perf_counter() - started
    summary = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    if done.returncode != 0 or summary != f"emit: {lines} sent, 0 refused, 0 failed":
        raise RuntimeError(f"emit --window {window} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--windows", default="1,1000", help="comma-separated --window values (default: 1,1000)")
    args = parser.parse_args(argv)
    windows = [int(w) for w in args.windows.split(",")]
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-emit-") as tmp, EmbeddedBroker() as broker:
        path = Path(tmp) / "events.jsonl"
        write_lines(path, args.lines)
        base = Settings(bootstrap_servers=broker.bootstrap_servers)
        for window in windows:
            times = []
            for _ in range(args.repeats):
                times.append(emit_once(_fresh(base), path, window, args.lines))
                print(f"-- emit --window {window}: {times[-1]:.2f} s", file=sys.stderr, flush=True)
            wall = median(times)
            rows.append((f"`ordernotify emit --window {window}`", wall, args.lines / wall))
        records = encode(placed_events(args.lines))
        times = [produce_backlog(_fresh(base), records) for _ in range(args.repeats)]
        wall = median(times)
        rows.append(("one kafka-python producer, pre-encoded records (ceiling)", wall, args.lines / wall))
    print(f"{args.lines} lines, median of {args.repeats} runs\n")
    print("| what | wall time (s) | events/s |")
    print("|---|---:|---:|")
    for name, wall, rate in rows:
        print(f"| {name} | {wall:.2f} | {rate:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
