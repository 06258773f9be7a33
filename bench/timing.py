"""Repeat a measurement and keep the median; read a child process's CPU time and memory from /proc."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Cost:
    """Per-item cost of one stage: median CPU and wall microseconds over ``runs`` repeats."""

    cpu_us: float
    wall_us: float
    runs: list[float]  # CPU µs per item of each repeat, to show the spread
    items: int

    @property
    def per_s(self) -> float:
        """Items per second of one core, from the CPU cost."""
        return 1e6 / self.cpu_us if self.cpu_us else float("inf")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "per_s": round(self.per_s, 1)}


def measure(run: Callable[[], int], repeats: int, setup: Callable[[], None] | None = None) -> Cost:
    """Call ``run`` (which returns how many items it handled) ``repeats`` times; median per-item costs."""
    cpu: list[float] = []
    wall: list[float] = []
    items = 0
    for _ in range(repeats):
        if setup is not None:
            setup()
        c0, w0 = time.process_time(), time.perf_counter()
        items = run()
        c1, w1 = time.process_time(), time.perf_counter()
        cpu.append((c1 - c0) * 1e6 / items)
        wall.append((w1 - w0) * 1e6 / items)
    return Cost(round(statistics.median(cpu), 1), round(statistics.median(wall), 1), [round(x, 1) for x in cpu],
                items)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


@dataclass(frozen=True)
class ProcSample:
    at: float  # time.monotonic()
    cpu_s: float  # user + system CPU seconds so far
    rss_kb: int
    hwm_kb: int  # peak RSS so far


def sample(pid: int) -> ProcSample | None:
    """CPU seconds and RSS of ``pid`` (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as fh:
            status = dict(line.split(":", 1) for line in fh if ":" in line)
    except (FileNotFoundError, ProcessLookupError):
        return None
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15 of stat)
    rss = int(status.get("VmRSS", "0 kB").split()[0])
    hwm = int(status.get("VmHWM", "0 kB").split()[0])
    return ProcSample(time.monotonic(), cpu, rss, hwm)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a consumer's render worker processes)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as fh:
                    todo.extend(int(child) for child in fh.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def sample_tree(pid: int) -> ProcSample | None:
    """:func:`sample` summed over ``pid`` and its descendants: CPU, RSS, and the sum of their peak RSS."""
    root = sample(pid)
    if root is None:
        return None
    parts = [root, *(s for s in (sample(child) for child in process_tree(pid)[1:]) if s is not None)]
    return ProcSample(root.at, sum(p.cpu_s for p in parts), sum(p.rss_kb for p in parts),
                      sum(p.hwm_kb for p in parts))
