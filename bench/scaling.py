"""1, 2 and 4 consumer processes in one group on 6 partitions, sharing the PostgreSQL state store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.end_to_end import Run, run_e2e
from bench.events import Encoded


def run_scaling(records: list[Encoded], process_counts: tuple[int, ...], settings_overrides: dict[str, Any],
                log_dir: Path | None = None) -> list[dict[str, Any]]:
    return [
        run_e2e(Run(f"scaling-{k}proc", processes=k, store="postgresql", settings=settings_overrides,
                    expect_emails=len(records)), records, log_dir)
        for k in process_counts
    ]
