"""How fast ``ordernotify emit`` publishes a file: ``python -m bench.emit_throughput [--lines 5000] [--repeats 3]``.

Starts the embedded broker, writes a file of valid ORDER_PLACED lines (several locales and currencies) to a
temporary directory and runs the real command, ``python -m cli emit FILE``, as its own process, once per window
(``--window 1`` is one acknowledgement at a time, the command's behaviour before pipelining) and number of encoding
processes (``--encoders 0``: parsing, validation and encoding in the sending process, as before; the default for a
file of 1 MiB or more is 2 others), ``repeats`` times each, every run on a fresh topic, the variants taking turns so
that a change in the machine's load touches them alike. Reported: the command's wall time (process start included:
what a user waits for), events/s = lines / wall time and the CPU time of the command's processes, medians of the
repeats; beside them, the dry run of the same file (no Kafka), the dry run of an empty file (what starting the
command costs) and one kafka-python producer putting the same pre-encoded records into the same broker (no
parsing, validation or encoding). Prints a Markdown table; nothing is written to the checkout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
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


def emit_once(settings: Settings, path: Path, options: list[str], expected: str) -> tuple[float, float]:
    """One run of the command: (wall seconds, CPU seconds of its process); raises unless it ends with ``expected``."""
    command = [sys.executable, "-m", "cli", "emit", str(path), *options,
               "--bootstrap-servers", settings.bootstrap_servers, "--events-topic", settings.events_topic]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    summary = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    if summary != expected:
        raise RuntimeError(f"emit {' '.join(options)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--windows", default="1,1000", help="comma-separated --window values (default: 1,1000)")
    parser.add_argument("--encoders", default="0,2", help="comma-separated --encoders values (default: 0,2)")
    args = parser.parse_args(argv)
    windows = [int(w) for w in args.windows.split(",")]
    encoders = [int(e) for e in args.encoders.split(",")]
    rows: list[tuple[str, float, float, float | None]] = []  # what, wall s, events/s, CPU s
    with tempfile.TemporaryDirectory(prefix="bench-emit-") as tmp, EmbeddedBroker() as broker:
        path = Path(tmp) / "events.jsonl"
        write_lines(path, args.lines)
        empty = Path(tmp) / "empty.jsonl"
        empty.write_text("", encoding="utf-8")
        base = Settings(bootstrap_servers=broker.bootstrap_servers)
        runs: list[tuple[str, Path, list[str], str]] = [
            (f"`ordernotify emit --window {w} --encoders {e}`", path, ["--window", str(w), "--encoders", str(e)],
             f"emit: {args.lines} sent, 0 refused, 0 failed") for w in windows for e in encoders]
        runs += [(f"`ordernotify emit --dry-run --encoders {e}` (parse, validate, encode; no Kafka)", path,
                  ["--dry-run", "--encoders", str(e)], f"emit: dry run, nothing sent: {args.lines} valid, 0 refused")
                 for e in encoders]
        runs.append(("`ordernotify emit --dry-run` of an empty file (process start)", empty, ["--dry-run"],
                     "emit: dry run, nothing sent: 0 valid, 0 refused"))
        walls: dict[str, list[float]] = {name: [] for name, *_ in runs}
        cpus: dict[str, list[float]] = {name: [] for name, *_ in runs}
        for _ in range(args.repeats):  # the variants take turns
            for name, file, options, expected in runs:
                wall, cpu = emit_once(_fresh(base), file, options, expected)
                walls[name].append(wall)
                cpus[name].append(cpu)
                print(f"-- {name}: {wall:.2f} s, CPU {cpu:.2f} s", file=sys.stderr, flush=True)
        for name, file, _options, _expected in runs:
            wall = median(walls[name])
            rows.append((name, wall, args.lines / wall if file is path else 0.0, median(cpus[name])))
        records = encode(placed_events(args.lines))
        wall = median([produce_backlog(_fresh(base), records) for _ in range(args.repeats)])
        rows.append(("one kafka-python producer, pre-encoded records (in process)", wall, args.lines / wall, None))
    print(f"{args.lines} lines, median of {args.repeats} runs\n")
    print("| what | wall time (s) | events/s | CPU (s) |")
    print("|---|---:|---:|---:|")
    for name, wall, rate, cpu in rows:
        print(f"| {name} | {wall:.2f} | {f'{rate:,.0f}' if rate else '–'} | {'–' if cpu is None else f'{cpu:.2f}'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
