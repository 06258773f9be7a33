"""The benchmark's tables (printed) and its JSON (written)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _f(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [[_f(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


BASELINES = {"naive": "naive baseline", "tuned": "tuned loop"}  # run name of each baseline, as in run.py
PRODUCT_RUNS = ("ordernotify defaults", "ordernotify best settings")


def ratios(throughput: list[dict[str, Any]], chain_limits: dict[str, Any] | None) -> dict[str, float]:
    """e-mails/s of ordernotify's runs over each baseline's (and of the tuned loop over the naive one), and over
    the CPU-chain limits; a ratio whose runs failed is left out."""
    by: dict[str, float] = {r["name"]: r["emails_per_s"] for r in throughput if r.get("emails_per_s")}
    out: dict[str, float] = {}
    for baseline, run_name in BASELINES.items():
        if run_name in by:
            for name in PRODUCT_RUNS:
                if name in by:
                    out[f"{name} / {baseline}"] = round(by[name] / by[run_name], 2)
    if BASELINES["naive"] in by and BASELINES["tuned"] in by:
        out["tuned / naive"] = round(by[BASELINES["tuned"]] / by[BASELINES["naive"]], 2)
    if chain_limits:
        for name in PRODUCT_RUNS:
            if name in by:
                out[f"{name} / CPU-chain limit (cheapest)"] = round(
                    by[name] / chain_limits["cheapest"]["emails_per_s"], 3)
                out[f"{name} / CPU-chain limit (as implemented)"] = round(
                    by[name] / chain_limits["as_implemented"]["emails_per_s"], 3)
    return out


def _vs(run: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    if baseline is None or not run.get("emails_per_s"):
        return "—"
    return _f(run["emails_per_s"] / baseline["emails_per_s"], 2) + "×"


def render(results: dict[str, Any]) -> str:
    out = [f"# ordernotify benchmark — {results['meta']['mode']} run, {results['meta']['date']}, "
           f"{results['meta']['cpus']} cores, git {results['meta']['git']}", ""]
    stages = results.get("stages", {})
    if stages:
        out += ["## Stage limits (each alone, one core; median of repeats)", ""]
        rows = []
        for name, c in stages.items():
            rows.append([name, c["cpu_us"], c["per_s"], c["wall_us"], round(1e6 / c["wall_us"], 1),
                         f"{min(c['runs']):.0f}–{max(c['runs']):.0f}"])
        out += [_table(["stage", "CPU µs/item", "items/s (CPU)", "wall µs/item", "items/s (wall)",
                        "CPU µs spread"], rows), ""]
    chain = results.get("chain_limits")
    if chain:
        rows = [[k, v] for k, v in chain["as_implemented"]["stages_us"].items()]
        rows += [["**sum (as implemented)**", chain["as_implemented"]["sum_us"]],
                 ["**sum (cheapest measured variant per stage)**", chain["cheapest"]["sum_us"]]]
        out += ["## CPU-chain limit (1 ÷ sum of per-e-mail CPU costs)", "",
                _table(["stage (as implemented)", "CPU µs/e-mail"], rows), "",
                f"CPU-chain limit: **{chain['as_implemented']['emails_per_s']:.0f} e-mails/s as implemented**, "
                f"**{chain['cheapest']['emails_per_s']:.0f} e-mails/s with the cheapest variants** "
                "(hand-assembled MIME with a compat32 read-back check, CSS inlined once, smtplib-class SMTP cost).", ""]
    runs = results.get("throughput", [])
    if runs:
        naive, tuned = (next((r for r in runs if r.get("consumer") == kind and r.get("emails_per_s")), None)
                        for kind in ("naive", "tuned"))
        rows = []
        for r in runs:
            rows.append([r["name"], r["events"], r.get("events_per_s"), r.get("emails_per_s"),
                         r.get("cpu_ms_per_email"), r.get("peak_rss_mb"),
                         f"{_f(r.get('rss_mb_at_20pct'))} → {_f(r.get('rss_mb_at_100pct'))}",
                         _vs(r, naive), _vs(r, tuned), r.get("error", "")])
        out += ["## Throughput (backlog drained; sustained = 10th to 90th percentile of e-mails)", "",
                _table(["run", "events", "events/s", "e-mails/s", "CPU ms/e-mail", "peak RSS MB",
                        "RSS MB 20 %→end", "vs naive", "vs tuned", "note"], rows), ""]
    ratios = results.get("ratios")
    if ratios:
        out += ["Ratios: " + "; ".join(f"{k} = {_f(v, 2)}" for k, v in ratios.items()), ""]
    latency = results.get("latency", [])
    if latency:
        rows = [[r["offered_per_s"], r["events"], r["delivered"], r["p50_ms"], r["p95_ms"], r["p99_ms"],
                 r["max_ms"], r["consumer_cpu_share"]] for r in latency]
        out += ["## Latency, occurred_at → SMTP acceptance (ORDER_PLACED, ordernotify defaults)", "",
                _table(["offered events/s", "events", "delivered", "p50 ms", "p95 ms", "p99 ms", "max ms",
                        "consumer CPU (cores)"], rows), ""]
    scaling = results.get("scaling", [])
    if scaling:
        base = scaling[0].get("emails_per_s")
        rows = [[r["processes"], r["events"], r.get("emails_per_s"),
                 _f(r["emails_per_s"] / base, 2) + "×" if base and "emails_per_s" in r else "—",
                 r.get("cpu_ms_per_email"), r.get("peak_rss_mb"), r.get("error", "")] for r in scaling]
        out += ["## Scaling (PostgreSQL store, 6 partitions, one group)", "",
                _table(["processes", "events", "e-mails/s", "vs 1", "CPU ms/e-mail (all)",
                        "peak RSS MB (one)", "note"], rows), ""]
    profile = results.get("profile")
    if profile:
        rows = [[k, round(100 * share, 1), round(share * profile["cpu_ms_per_email"], 2)]
                for k, share in profile["shares"].items()]
        out += [f"## CPU per e-mail by stage, end to end (py-spy --gil on the default consumer, "
                f"{profile['cpu_ms_per_email']:.2f} ms/e-mail in all)", "",
                _table(["stage", "% of GIL samples", "≈ CPU ms/e-mail"], rows), ""]
    return "\n".join(out)


def write(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
