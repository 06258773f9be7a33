"""Run the benchmark: ``python -m bench.run [--quick] [--events N] [--out bench/results/latest.json]``.

Stage limits, the two baselines (naive and tuned loops), ordernotify end to end (defaults, best settings, a
mixed stream, aiosmtpd), latency at fixed offered loads, scaling over processes, and a profile; prints the tables
(Markdown) and writes the JSON. ``--quick`` takes about 2–3 minutes, the full run about 15.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.end_to_end import Run, run_e2e
from bench.events import encode, mixed_events, placed_events
from bench.latency import run_latency
from bench.profile import summarise
from bench.scaling import run_scaling
from bench.stages import chain_limits, run_stages
from devstack.broker import EmbeddedBroker
from ordernotify.config import Settings

# ordernotify's best settings found so far (bench/README.md, "Best settings"); defaults are the product's.
BEST = {"max_poll_records": 1000, "smtp_connections": 16, "outbox_batch": 128}

SIZES: dict[str, dict[str, Any]] = {
    "quick": {"events": 1200, "repeats": 3, "stage_events": 600, "smtp_n": 400, "mixed_orders": 250,
              "aiosmtpd_events": 800, "scaling": (1, 2), "scaling_events": 1000, "rates": (100, 300),
              "durations": {100: 5, 300: 5}, "drain_s": 20, "profile_events": 1500, "profile_s": 6},
    "full": {"events": 20000, "repeats": 5, "stage_events": 1000, "smtp_n": 1000, "mixed_orders": 1500,
             "aiosmtpd_events": 4000, "scaling": (1, 2, 4), "scaling_events": 4000, "rates": (100, 300, 600),
             "durations": {100: 20, 300: 10, 600: 10}, "drain_s": 60, "profile_events": 4000, "profile_s": 15},
}


def _git() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _step(name: str) -> float:
    print(f"-- {name} ...", file=sys.stderr, flush=True)
    return time.monotonic()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about 2-3 minutes")
    parser.add_argument("--events", type=int, help="events per throughput run (full: 20000)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.json"))
    parser.add_argument("--only", default="", help="comma-separated sections: stages,throughput,latency,scaling,"
                        "profile (default: all)")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    size = dict(SIZES[mode])
    if args.events:
        size["events"] = args.events
    only = set(filter(None, args.only.split(",")))

    def wanted(section: str) -> bool:
        return not only or section in only

    log_dir = args.out.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"meta": {
        "mode": mode, "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpus": os.cpu_count(),
        "python": platform.python_version(), "git": _git(), "sizes": {k: str(v) for k, v in size.items()},
        "best_settings": BEST,
    }}
    started = time.monotonic()
    n = size["events"]
    placed = placed_events(max(n, size["stage_events"], size["scaling_events"], size["profile_events"]))

    if wanted("stages"):
        _step("stage limits")
        with EmbeddedBroker() as broker:
            costs = run_stages(Settings(bootstrap_servers=broker.bootstrap_servers), placed[: size["stage_events"]],
                               size["repeats"], size["smtp_n"])
        results["stages"] = {k: v.as_dict() for k, v in costs.items()}
        results["chain_limits"] = chain_limits(costs, Settings().max_poll_records)

    if wanted("throughput"):
        records = encode(placed[:n])
        runs = [
            Run("naive baseline", consumer="naive", expect_emails=n),
            Run("tuned loop", consumer="tuned", expect_emails=n),
            Run("ordernotify defaults", expect_emails=n),
            Run("ordernotify best settings", settings=BEST, expect_emails=n),
        ]
        throughput = []
        for run in runs:
            _step(f"throughput: {run.name} ({n} events)")
            throughput.append(run_e2e(run, records, log_dir))
        mixed = mixed_events(size["mixed_orders"])
        _step(f"throughput: mixed lifecycles ({len(mixed)} events)")
        throughput.append(run_e2e(Run("ordernotify defaults, mixed lifecycles"), encode(mixed), log_dir))
        m = size["aiosmtpd_events"]
        _step(f"throughput: aiosmtpd sink ({m} events)")
        throughput.append(run_e2e(Run("ordernotify defaults → aiosmtpd", sink="aiosmtpd", expect_emails=m),
                                  records[:m], log_dir))
        results["throughput"] = throughput
        results["ratios"] = report.ratios(throughput, results.get("chain_limits"))

    if wanted("latency"):
        _step(f"latency at {size['rates']} events/s")
        results["latency"] = run_latency(size["rates"], size["durations"], {}, size["drain_s"], log_dir)

    if wanted("scaling"):
        _step(f"scaling over {size['scaling']} processes")
        results["scaling"] = run_scaling(encode(placed[: size["scaling_events"]]), size["scaling"], {}, log_dir)

    if wanted("profile"):
        _step("profile of the default consumer (py-spy)")
        raw = args.out.with_name(args.out.stem + "-profile.raw")
        k = size["profile_events"]
        run = run_e2e(Run("profile", expect_emails=k), encode(placed[:k]), log_dir, profile=(raw, size["profile_s"]))
        if raw.exists():
            text, shares = summarise(raw)
            args.out.with_name(args.out.stem + "-profile.txt").write_text(text)
            results["profile"] = {"shares": shares, "cpu_ms_per_email": run.get("cpu_ms_per_email", float("nan")),
                                  "run": run}

    results["meta"]["elapsed_s"] = round(time.monotonic() - started, 1)
    report.write(results, args.out)
    print(report.render(results))
    print(f"\n(took {results['meta']['elapsed_s']:.0f} s; JSON in {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
