"""The webhook gateway beside the consumers: its Compose service, Kubernetes manifests, scrape job and panels."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from ordernotify.config import env_name
from tests.deploy.test_compose_and_k8s import DEPLOY, _k8s_objects, _yaml

PORT_VARIABLE = "ORDERNOTIFY_GATEWAY_PORT"
SECRET_SETTINGS = ("gateway_webhook_secrets", "shopify_secret", "woocommerce_secret")


@pytest.fixture(scope="module")
def service() -> dict[str, Any]:
    compose = _yaml(DEPLOY / "docker-compose.yml")
    assert "gateway" in compose["services"]
    gateway: dict[str, Any] = compose["services"]["gateway"]
    gateway["_compose"] = compose
    return gateway


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict[str, Any]]:
    return _k8s_objects("ordernotify-gateway")


def _container(k8s: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = k8s["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _k8s_env(k8s: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in _container(k8s)["env"]}


# -- Compose ----------------------------------------------------------------------------------------------------

def test_compose_runs_the_gateway_command_from_the_consumers_image_after_the_topics(service: dict[str, Any]) -> None:
    compose = service["_compose"]
    assert service["image"] == compose["services"]["consumer"]["image"]
    assert service["command"] == ["gateway"]
    assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert service["environment"]["ORDERNOTIFY_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert service["environment"]["ORDERNOTIFY_EVENTS_TOPIC"] == "orders.events"


def test_compose_publishes_the_gateway_port_and_checks_healthz_on_it(service: dict[str, Any]) -> None:
    port = service["environment"][PORT_VARIABLE]
    assert f"{port}:{port}" in [str(p) for p in service["ports"]]
    probe = " ".join(service["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/healthz" in probe


def test_compose_gives_the_webhook_secret_as_a_file_holding_a_standard_webhooks_secret(service: dict[str, Any]) -> None:
    env = service["environment"]
    assert "ORDERNOTIFY_GATEWAY_WEBHOOK_SECRETS" not in env
    (name,) = service["secrets"]
    assert env["ORDERNOTIFY_GATEWAY_WEBHOOK_SECRETS_FILE"] == f"/run/secrets/{name}"
    secret_file = DEPLOY / service["_compose"]["secrets"][name]["file"]
    text = secret_file.read_text().strip()
    assert text.startswith("whsec_") and len(base64.b64decode(text.removeprefix("whsec_"), validate=True)) >= 24


def test_prometheus_scrapes_the_gateway_on_its_port(service: dict[str, Any]) -> None:
    prometheus = _yaml(DEPLOY / "prometheus" / "prometheus.yml")
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "ordernotify-gateway")
    assert job["dns_sd_configs"][0]["names"] == ["gateway"]
    assert job["dns_sd_configs"][0]["port"] == int(service["environment"][PORT_VARIABLE])
    assert job["metrics_path"] == "/metrics"


# -- Kubernetes -------------------------------------------------------------------------------------------------

def test_k8s_has_a_gateway_deployment_and_service_in_the_kustomization(k8s: dict[str, dict[str, Any]]) -> None:
    assert set(k8s) == {"Deployment", "Service"}
    assert "gateway.yaml" in _yaml(DEPLOY / "k8s" / "kustomization.yaml")["resources"]
    labels = k8s["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert k8s["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert k8s["Service"]["spec"]["selector"].items() <= labels.items()
    assert _container(k8s)["args"] == ["gateway"]
    assert k8s["Deployment"]["spec"]["replicas"] >= 2, "one replica restarting would make every platform retry"


def test_k8s_probes_and_service_use_the_gateway_port(k8s: dict[str, dict[str, Any]]) -> None:
    container = _container(k8s)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": int(_k8s_env(k8s)[PORT_VARIABLE])}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    (service_port,) = k8s["Service"]["spec"]["ports"]
    assert service_port["targetPort"] == "http"
    annotations = k8s["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["http"]


def test_k8s_resources_and_an_unprivileged_pod(k8s: dict[str, dict[str, Any]]) -> None:
    container = _container(k8s)
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), f"missing {kind}"
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # Requests in flight are answered within the answer timeout (4 s by default) before the process ends.
    assert pod["terminationGracePeriodSeconds"] > 4


def test_k8s_secrets_are_files_of_a_mounted_secret_never_values(k8s: dict[str, dict[str, Any]]) -> None:
    container = _container(k8s)
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    env = _k8s_env(k8s)
    assert container["envFrom"] == [{"configMapRef": {"name": "ordernotify-config"}}]
    for setting in SECRET_SETTINGS:
        variable = env_name(setting)
        assert variable not in env
        path = env[variable + "_FILE"]
        mount = next(m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert volume["secret"]["secretName"] == "ordernotify-gateway" and mount["readOnly"] is True


def test_the_dashboard_shows_the_gateway() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "ordernotify.json").read_text())
    exprs = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", []))
    for name in ("ordernotify_gateway_requests_total", "ordernotify_gateway_signature_failures_total",
                 "ordernotify_gateway_produce_latency_seconds_bucket", 'up{job="ordernotify-gateway"}'):
        assert name in exprs
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"]), "panel ids must differ"
