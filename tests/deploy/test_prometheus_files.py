"""The Prometheus files, checked by Prometheus's own tool (Debian package ``prometheus``: scripts/system-deps.sh)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: run scripts/system-deps.sh")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60)


def test_alert_rules_pass_promtool_check_rules() -> None:
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 21 rules found" in result.stdout  # 16 alerts, 5 recording rules


def test_prometheus_config_passes_promtool_check_config() -> None:
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid prometheus config file syntax" in result.stdout


def test_alert_rules_behave_as_their_unit_tests_say() -> None:
    # Includes: DLQ alert fires on one dead letter; "events but no e-mails" does not fire when every
    # event is legitimately suppressed as a duplicate; the gateway's 5xx ratio ignores 4xx answers.
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_really_rejects_a_broken_rule(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum(rate(x[5m]) >\n")
    result = _promtool("check", "rules", str(bad))
    assert result.returncode != 0
