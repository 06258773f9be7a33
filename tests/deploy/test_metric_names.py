"""Every metric the dashboard and the alert rules query is one the code really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from ordernotify.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# Series Prometheus itself makes for each scrape target.
PROMETHEUS_BUILTINS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_LABEL_MATCHERS = re.compile(r"\{[^}]*\}")
_DURATIONS = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def _series_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or label names."""
    text = _STRINGS.sub("", expr)
    text = _LABEL_MATCHERS.sub("", text)
    text = _DURATIONS.sub("", text)
    text = _GROUPING.sub("", text)
    text = re.sub(r"\$__\w+", "", text)
    names = set()
    for match in _IDENT.finditer(text):
        rest = text[match.end():].lstrip()
        word = match.group()
        if rest.startswith("(") or word in {"and", "or", "unless", "bool", "offset", "by", "without", "on"}:
            continue
        if re.fullmatch(r"\d.*|e\d+|inf|nan|Inf|NaN", word):
            continue
        names.add(word)
    return names


def _recorded() -> set[str]:
    """Series the rules record themselves (``record:``): queried by alerts and panels like exported ones."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return {rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule}


def _rule_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "ordernotify.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_parser_finds_names_and_skips_functions_labels_and_keywords() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, template) (rate(ordernotify_x_bucket{job="a b", le=~"1"}[5m])))'
            ' > 900 and on () (sum(increase(other_total[1h])) or on () vector(0)) == 0 and up == 1')
    assert _series_names(expr) == {"ordernotify_x_bucket", "other_total", "up"}


@pytest.mark.parametrize(("source", "exprs"), [("alerts.yml", _rule_exprs()), ("dashboard", _dashboard_exprs())])
def test_every_queried_metric_is_exported(source: str, exprs: list[str]) -> None:
    exported = Metrics().exported_metric_names() | PROMETHEUS_BUILTINS | _recorded()
    assert exprs, f"no expressions found in {source}"
    used = set().union(*(_series_names(e) for e in exprs))
    assert used, f"{source} queries no metric at all"
    assert used - exported == set(), f"{source} queries metrics the code does not export"


def test_dashboard_covers_the_main_metrics() -> None:
    used = set().union(*(_series_names(e) for e in _dashboard_exprs()))
    for name in ("ordernotify_events_consumed_total", "ordernotify_decisions_total", "ordernotify_emails_sent_total",
                 "ordernotify_emails_failed_total", "ordernotify_end_to_end_latency_seconds_bucket",
                 "ordernotify_consumer_lag_records", "ordernotify_dead_letters_total", "ordernotify_feedback_total",
                 "ordernotify_suppressed_sends_total", "ordernotify:bounce_rate:ratio1h",
                 "ordernotify:complaint_rate:ratio1h"):
        assert name in used


def test_alerts_cover_the_issue_list() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    assert {"OrderNotifyConsumerLagGrowing", "OrderNotifyDeadLettersReceived", "OrderNotifySmtpFailureRatioHigh",
            "OrderNotifyEventsButNoEmails", "OrderNotifyEndToEndLatencyHigh", "OrderNotifyBounceRateHigh",
            "OrderNotifyBounceRateCritical", "OrderNotifyComplaintRateHigh",
            "OrderNotifyComplaintRateCritical", "OrderNotifyGatewayDown", "OrderNotifyGatewaySignatureFailures",
            "OrderNotifyGateway5xxRatioHigh", "OrderNotifyGatewayProduceLatencyHigh"} <= names


def test_every_recorded_series_is_a_bounded_rule_name() -> None:
    recorded = _recorded()
    assert {"ordernotify:bounce_rate:ratio1h", "ordernotify:complaint_rate:ratio1h"} <= recorded
    assert recorded.isdisjoint(Metrics().exported_metric_names())
