"""A real Prometheus server on loopback scrapes our endpoint and answers a query through its HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from ordernotify.devstack.ports import free_port, wait_for_port
from ordernotify.http_endpoints import EndpointServer, start_endpoints
from ordernotify.metrics import Metrics

PROMETHEUS = shutil.which("prometheus")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus missing: run scripts/system-deps.sh"),
]


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


@pytest.fixture
def endpoint(metrics: Metrics) -> Iterator[EndpointServer]:
    with start_endpoints("127.0.0.1", 0, metrics.registry) as server:
        yield server


@pytest.fixture
def prometheus_url(endpoint: EndpointServer, tmp_path: Path) -> Iterator[str]:
    assert PROMETHEUS is not None
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: ordernotify-consumer\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{endpoint.port}']\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout_s=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _wait_for(base: str, promql: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            result = _query(base, promql)
        except OSError:
            result = []
        if result:
            return result
        time.sleep(0.5)
    raise TimeoutError(f"Prometheus returned nothing for {promql} within {timeout_s} s")


def test_prometheus_scrapes_a_counter_we_incremented(metrics: Metrics, prometheus_url: str) -> None:
    metrics.events_consumed.labels(event_type="ORDER_SHIPPED").inc(7)
    metrics.set_lag({("orders.events", 2): 11})
    result = _wait_for(prometheus_url, 'ordernotify_events_consumed_total{event_type="ORDER_SHIPPED"}')
    assert len(result) == 1
    assert result[0]["metric"]["job"] == "ordernotify-consumer"
    assert float(result[0]["value"][1]) == 7.0
    lag = _wait_for(prometheus_url, 'ordernotify_consumer_lag_records{topic="orders.events"}')
    assert lag[0]["metric"]["partition"] == "2" and float(lag[0]["value"][1]) == 11.0
    up = _wait_for(prometheus_url, 'up{job="ordernotify-consumer"}')
    assert float(up[0]["value"][1]) == 1.0
