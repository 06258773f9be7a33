"""The endpoint server over real HTTP on loopback: /metrics, /healthz, /readyz."""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from ordernotify.config import Settings
from ordernotify.http_endpoints import (
    EndpointServer,
    ReadinessReport,
    start_configured_endpoints,
    start_endpoints,
    tcp_reachable,
)
from ordernotify.metrics import Metrics


class Switch:
    """A readiness callable the test flips."""

    def __init__(self) -> None:
        self.checks = {"group_joined": False, "broker": True, "smtp": False}

    def __call__(self) -> ReadinessReport:
        return ReadinessReport(dict(self.checks), {"smtp": "connection refused"})


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


@pytest.fixture
def switch() -> Switch:
    return Switch()


@pytest.fixture
def server(metrics: Metrics, switch: Switch) -> Iterator[EndpointServer]:
    with start_endpoints("127.0.0.1", 0, metrics.registry, switch) as running:
        yield running


def _get(server: EndpointServer, path: str, accept: str = "") -> tuple[int, str, str]:
    request = urllib.request.Request(server.url + path, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_port_zero_binds_a_free_port(server: EndpointServer) -> None:
    assert server.port > 0
    assert tcp_reachable("127.0.0.1", server.port)


def test_metrics_serves_the_registry(server: EndpointServer, metrics: Metrics) -> None:
    metrics.events_consumed.labels(event_type="ORDER_SHIPPED").inc(3)
    status, content_type, body = _get(server, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    assert 'ordernotify_events_consumed_total{event_type="ORDER_SHIPPED"} 3.0' in body
    assert "python_gc_objects_collected_total" not in body  # our registry, not the process-global one


def test_metrics_speaks_openmetrics_when_asked(server: EndpointServer, metrics: Metrics) -> None:
    metrics.ready.set(1)
    status, content_type, body = _get(server, "/metrics", accept="application/openmetrics-text; version=1.0.0")
    assert status == 200 and content_type.startswith("application/openmetrics-text")
    assert "ordernotify_ready 1.0" in body and body.rstrip().endswith("# EOF")


def test_healthz_is_ok_even_when_not_ready(server: EndpointServer) -> None:
    assert _get(server, "/healthz")[::2] == (200, "ok\n")


def test_readyz_is_503_with_failing_checks_then_200(server: EndpointServer, switch: Switch) -> None:
    status, content_type, body = _get(server, "/readyz")
    assert status == 503 and content_type == "application/json"
    report = json.loads(body)
    assert report["ready"] is False
    assert report["failing"] == [{"check": "group_joined", "detail": ""},
                                 {"check": "smtp", "detail": "connection refused"}]
    switch.checks.update(group_joined=True, smtp=True)
    status, _, body = _get(server, "/readyz")
    assert status == 200
    assert json.loads(body) == {"ready": True, "checks": {"group_joined": True, "broker": True, "smtp": True},
                                "failing": []}


def test_a_readiness_check_that_raises_means_not_ready(metrics: Metrics) -> None:
    def broken() -> ReadinessReport:
        raise RuntimeError("state unknown")

    with start_endpoints("127.0.0.1", 0, metrics.registry, broken) as server:
        status, _, body = _get(server, "/readyz")
        assert status == 503
        assert json.loads(body)["failing"] == [{"check": "readiness_check", "detail": "RuntimeError"}]
        assert _get(server, "/healthz")[0] == 200


def test_unknown_path_is_404(server: EndpointServer) -> None:
    assert _get(server, "/nope")[0] == 404


def test_stop_releases_the_port(metrics: Metrics) -> None:
    server = start_endpoints("127.0.0.1", 0, metrics.registry)
    port = server.port
    assert tcp_reachable("127.0.0.1", port)
    server.stop()
    assert not tcp_reachable("127.0.0.1", port, timeout_s=0.5)


def test_settings_port_zero_means_off_but_a_port_means_on(metrics: Metrics) -> None:
    off = dataclasses.replace(Settings(), metrics_port=0)
    assert start_configured_endpoints(off, metrics.registry) is None
    from devstack.ports import free_port

    on = dataclasses.replace(Settings(), metrics_host="127.0.0.1", metrics_port=free_port())
    server = start_configured_endpoints(on, metrics.registry)
    assert server is not None
    try:
        assert server.port == on.metrics_port
        assert _get(server, "/readyz")[0] == 200  # no checks supplied: always ready
    finally:
        server.stop()


def test_a_port_another_service_holds_is_a_setting_to_change_naming_it() -> None:
    """Before, the bind's OSError left ``consume``, ``bounces`` or ``relay`` as a traceback (and the relay's Kafka
    consumer open); now one line names the address and the option."""
    import socket

    from ordernotify.errors import ConfigError

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}.*--metrics-port"):
            start_endpoints("127.0.0.1", port, Metrics().registry)
