"""A real Prometheus server on loopback scrapes our endpoint and answers a query through its HTTP API."""

from __future__ import annotations

import contextlib
import dataclasses
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

from devstack.ports import free_port, wait_for_port
from devstack.smtp_capture import SmtpCapture
from ordernotify.config import Settings
from ordernotify.http_endpoints import EndpointServer, start_endpoints
from ordernotify.metrics import Metrics
from producers.event_producer import OrderEventProducer
from tests import factories
from tests.consumer_runner import ConsumerRunner

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


@contextlib.contextmanager
def prometheus_scraping(target_port: int, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus on a free loopback port scraping ``127.0.0.1:target_port`` every second."""
    assert PROMETHEUS is not None
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: ordernotify-consumer\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
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


@pytest.fixture
def prometheus_url(endpoint: EndpointServer, tmp_path: Path) -> Iterator[str]:
    with prometheus_scraping(endpoint.port, tmp_path) as url:
        yield url


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


def test_prometheus_scrapes_a_running_consumer(settings: Settings, smtp_server: SmtpCapture, tmp_path: Path) -> None:
    settings = dataclasses.replace(settings, metrics_host="127.0.0.1", metrics_port=free_port())
    with OrderEventProducer(settings) as producer:
        for n in range(2):
            producer.send_and_wait(factories.placed_event(order_id=f"PM-{n}"))
    with ConsumerRunner(settings) as runner, prometheus_scraping(settings.metrics_port, tmp_path) as prometheus:
        runner.wait_handled(2)
        smtp_server.wait_for(2)
        base = f"http://127.0.0.1:{settings.metrics_port}"
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
            assert json.loads(response.read())["ready"] is True
        sent = _wait_for(prometheus, 'ordernotify_emails_sent_total{template="order_placed"} == 2')
        assert float(sent[0]["value"][1]) == 2.0
        latency = _wait_for(prometheus, "ordernotify_end_to_end_latency_seconds_count > 0")
        assert float(latency[0]["value"][1]) == 2.0
        consumed = _wait_for(prometheus, 'ordernotify_events_consumed_total{event_type="ORDER_PLACED"}')
        assert float(consumed[0]["value"][1]) == 2.0
