"""The benchmark's ratios and throughput table: ordernotify against both baselines, failed runs left out."""

from __future__ import annotations

from typing import Any

import pytest

from bench import report


def _run(name: str, consumer: str, emails_per_s: float | None) -> dict[str, Any]:
    run: dict[str, Any] = {"name": name, "consumer": consumer, "events": 1000}
    if emails_per_s is not None:
        run.update(emails_per_s=emails_per_s, events_per_s=emails_per_s, cpu_ms_per_email=2.0)
    else:
        run["error"] = "only 3 e-mails accepted"
    return run


THROUGHPUT = [_run("naive baseline", "naive", 100.0), _run("tuned loop", "tuned", 400.0),
              _run("ordernotify defaults", "ordernotify", 200.0),
              _run("ordernotify best settings", "ordernotify", 300.0)]
CHAIN = {"cheapest": {"emails_per_s": 1000.0}, "as_implemented": {"emails_per_s": 500.0}}


def test_ratios_against_both_baselines_and_the_chain_limits() -> None:
    assert report.ratios(THROUGHPUT, CHAIN) == {
        "ordernotify defaults / naive": 2.0,
        "ordernotify best settings / naive": 3.0,
        "ordernotify defaults / tuned": 0.5,
        "ordernotify best settings / tuned": 0.75,
        "tuned / naive": 4.0,
        "ordernotify defaults / CPU-chain limit (cheapest)": 0.2,
        "ordernotify defaults / CPU-chain limit (as implemented)": 0.4,
        "ordernotify best settings / CPU-chain limit (cheapest)": 0.3,
        "ordernotify best settings / CPU-chain limit (as implemented)": 0.6,
    }


@pytest.mark.parametrize("failed", ["tuned loop", "naive baseline"])
def test_a_failed_baseline_gives_no_ratio_against_it(failed: str) -> None:
    consumer = "tuned" if failed == "tuned loop" else "naive"
    runs = [_run(failed, consumer, None) if r["name"] == failed else r for r in THROUGHPUT]
    got = report.ratios(runs, None)
    assert not any(f"/ {consumer}" in key for key in got)
    assert "tuned / naive" not in got
    assert len(got) == 2  # ordernotify's two runs over the baseline that worked


def test_throughput_table_compares_every_run_with_each_baseline() -> None:
    text = report.render({"meta": {"mode": "quick", "date": "today", "cpus": 2, "git": "abc"},
                          "throughput": THROUGHPUT, "ratios": report.ratios(THROUGHPUT, None)})
    header = next(line for line in text.splitlines() if line.startswith("| run"))
    assert [c.strip() for c in header.strip("|").split("|")][-3:] == ["vs naive", "vs tuned", "note"]
    defaults = next(line for line in text.splitlines() if line.startswith("| ordernotify defaults "))
    assert [c.strip() for c in defaults.strip("|").split("|")][-3:-1] == ["2.00×", "0.50×"]
    assert "ordernotify defaults / tuned = 0.50" in text
