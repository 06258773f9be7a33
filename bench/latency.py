"""End-to-end latency at fixed offered loads: occurred_at (= the send time) to SMTP acceptance.

Only ORDER_PLACED events, which the policy sends at once (never held in a coalescing window). The
producer stamps each event's ``occurred_at`` when it sends it; the stamp sink writes the time at
which it read the end of each message's DATA, with the Message-ID, and the order-confirmation
Message-ID is derived from the order id (``consumers.deliver.message.order_root_id``), so every e-mail is
joined back to its event. All clocks are this machine's ``time.time()``; Avro keeps milliseconds,
so latencies are exact to about 1 ms.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.end_to_end import Run, stack, start_consumers, stop_consumers
from bench.events import PacedProducer, placed_events
from bench.sinks import read_stamps
from bench.timing import percentile, sample_tree
from consumers.deliver.message import order_root_id


def run_latency(rates: tuple[int, ...], duration_s: dict[int, float], settings_overrides: dict[str, Any],
                drain_s: float, log_dir: Path | None = None) -> list[dict[str, Any]]:
    run = Run("latency", sink="stamp", settings=settings_overrides)
    results = []
    with stack(run, []) as (settings, sink, env):
        stderr = open(log_dir / "latency.stderr", "wb") if log_dir else None  # noqa: SIM115
        processes = start_consumers(run, settings, env, stderr)
        try:
            domain = settings.sender_address.rpartition("@")[2]
            warm = PacedProducer(settings, placed_events(50, seed=1000), 50).start()  # group join, templates
            warm.join()
            if not sink.wait_for(50, 60, processes):
                raise RuntimeError(f"warm-up: only {sink.count} of 50 e-mails arrived")
            expected = 50
            for k, rate in enumerate(rates):
                events = placed_events(int(rate * duration_s[rate]), seed=2000 + k)
                cpu0 = sample_tree(processes[0].pid)
                producer = PacedProducer(settings, events, rate).start()
                producer.join()
                expected += len(events)
                sink.wait_for(expected, drain_s, processes)
                cpu1 = sample_tree(processes[0].pid)
                stamps = read_stamps(sink.stamp_file)  # type: ignore[arg-type]
                latencies = [stamps[mid] - at for order_id, at in producer.sent.items()
                             if (mid := order_root_id(order_id, domain)) in stamps]
                delivered = len(latencies)
                results.append({
                    "offered_per_s": rate, "events": len(events), "delivered": delivered,
                    "kept_up": delivered == len(events),
                    "p50_ms": round(1000 * percentile(latencies, 50), 1),
                    "p95_ms": round(1000 * percentile(latencies, 95), 1),
                    "p99_ms": round(1000 * percentile(latencies, 99), 1),
                    "max_ms": round(1000 * max(latencies), 1) if latencies else float("nan"),
                    "producer_behind_s": round(producer.behind_s, 3),
                    "consumer_cpu_share": round((cpu1.cpu_s - cpu0.cpu_s) / (cpu1.at - cpu0.at), 2)
                    if cpu0 and cpu1 else float("nan"),
                })
                if not results[-1]["kept_up"]:
                    expected = sink.count  # what is still queued would only delay the next phase
                    time.sleep(1)
        finally:
            stop_consumers(processes)
            if stderr:
                stderr.close()
    return results
