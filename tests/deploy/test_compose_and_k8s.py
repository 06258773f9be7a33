"""The Compose stack and the Kubernetes manifests, parsed and checked (Docker does not run here)."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from ordernotify.config import ENV_PREFIX, Settings, env_name, load_settings
from ordernotify.topics import topic_configs

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRICS_PORT = Settings().metrics_port


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _yaml(DEPLOY / "docker-compose.yml")


def _k8s_objects(app: str) -> dict[str, dict[str, Any]]:
    """The manifests under deploy/k8s of one app (label ``app.kubernetes.io/name``), by kind (one object per kind)."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") == "Kustomization":
                continue
            if doc["metadata"]["labels"]["app.kubernetes.io/name"] == app:
                assert doc["kind"] not in objects, f"two {doc['kind']} manifests for {app}"
                objects[doc["kind"]] = doc
    return objects


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict[str, Any]]:
    """The consumer's manifests (and the ConfigMap every ordernotify pod reads) by kind."""
    return _k8s_objects("ordernotify-consumer")


def _image_name(image: str) -> str:
    return image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image


# -- Compose ------------------------------------------------------------------

def test_compose_has_the_stack_with_pinned_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    images = {name: _image_name(s["image"]) for name, s in services.items() if "image" in s}
    assert images["kafka"] == "apache/kafka"
    assert images["mailpit"] == "axllent/mailpit"
    assert images["prometheus"] == "prom/prometheus"
    assert images["grafana"] == "grafana/grafana"
    for name, service in services.items():
        if "image" in service and "build" not in service and service["image"] != "ordernotify:dev":
            tag = service["image"].rsplit(":", 1)[-1]
            assert ":" in service["image"] and tag != "latest", f"{name}: pin the image version"


def test_kafka_runs_in_kraft_mode(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith("1@kafka:")
    assert "ZOOKEEPER" not in json.dumps(env).upper()


def test_topics_are_created_with_the_record_limits_the_code_uses(compose: dict[str, Any]) -> None:
    script = compose["services"]["topics"]["command"][0]
    created = {m.group(1): m.group(2) for m in re.finditer(r"--topic (\S+) --partitions \d+(.*)", script)}
    for topic, configs in topic_configs(Settings()).items():
        assert topic in created, f"the topics service does not create {topic}"
        for name, value in configs.items():
            assert f"--config {name}={value}" in created[topic], (topic, name, value)


def test_two_consumer_replicas_built_from_the_dockerfile(compose: dict[str, Any]) -> None:
    consumer = compose["services"]["consumer"]
    assert consumer["deploy"]["replicas"] == 2
    assert consumer["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / consumer["build"]["context"] / consumer["build"]["dockerfile"]).is_file()
    assert consumer["command"] == ["consume"]
    env = consumer["environment"]
    assert env["ORDERNOTIFY_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["ORDERNOTIFY_SMTP_HOST"] == "mailpit" and env["ORDERNOTIFY_SMTP_PORT"] == "1025"
    assert int(env["ORDERNOTIFY_METRICS_PORT"]) == METRICS_PORT
    assert str(METRICS_PORT) in consumer["expose"]
    assert "ports" not in consumer, "two replicas cannot publish the same host port"
    assert "/healthz" in " ".join(consumer["healthcheck"]["test"])


def test_simulator_runs_the_same_image(compose: dict[str, Any]) -> None:
    simulator = compose["services"]["simulator"]
    assert simulator["image"] == compose["services"]["consumer"]["image"]
    assert simulator["command"][0] == "simulate"
    assert simulator["environment"]["ORDERNOTIFY_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_ui_ports_are_published(compose: dict[str, Any]) -> None:
    published = {name: [str(p) for p in s.get("ports", [])] for name, s in compose["services"].items()}
    assert "8025:8025" in published["mailpit"]
    assert "9090:9090" in published["prometheus"]
    assert "3000:3000" in published["grafana"]


def test_prometheus_and_grafana_mount_files_that_exist(compose: dict[str, Any]) -> None:
    for name in ("prometheus", "grafana"):
        for volume in compose["services"][name]["volumes"]:
            source = volume.split(":")[0]
            assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
    prometheus = _yaml(DEPLOY / "prometheus" / "prometheus.yml")
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "ordernotify-consumer")
    assert job["dns_sd_configs"][0]["names"] == ["consumer"]
    assert job["dns_sd_configs"][0]["port"] == METRICS_PORT


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboard() -> None:
    datasource = _yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    provider = _yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "ordernotify.yml")["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "ordernotify.json").read_text())
    assert dashboard["uid"] == "ordernotify" and len(dashboard["panels"]) >= 10
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"]


def test_dockerfile_installs_the_package_and_runs_unprivileged() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert re.search(r'^RUN pip install "?\.', text, re.M)
    assert re.search(r"^USER (?!root|0\b)\S+", text, re.M)
    assert 'ENTRYPOINT ["ordernotify"]' in text
    pyproject = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())
    packages = [pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    assert {"ordernotify", "cli", "devstack"} <= set(packages)
    for folder in packages:  # every package the wheel holds, or the command fails to import in the image
        assert re.search(rf"^COPY {folder} ", text, re.M), f"{folder} is not copied into the image"


# -- Kubernetes -----------------------------------------------------------------

def test_k8s_has_the_objects(k8s: dict[str, dict[str, Any]]) -> None:
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} <= set(k8s)
    kustomization = _yaml(DEPLOY / "k8s" / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(p.name for p in (DEPLOY / "k8s").glob("*.yaml")
                                                         if p.name != "kustomization.yaml")


def _container(k8s: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = k8s["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_deployment_replicas_and_selector(k8s: dict[str, dict[str, Any]]) -> None:
    deployment = k8s["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert k8s["Service"]["spec"]["selector"].items() <= labels.items()
    assert k8s["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert _container(k8s)["args"] == ["consume"]


def test_probes_hit_healthz_and_readyz_on_the_metrics_port(k8s: dict[str, dict[str, Any]]) -> None:
    container = _container(k8s)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == METRICS_PORT
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    config = k8s["ConfigMap"]["data"]
    assert int(config["ORDERNOTIFY_METRICS_PORT"]) == METRICS_PORT
    assert config["ORDERNOTIFY_METRICS_HOST"] == "0.0.0.0"
    service_port = k8s["Service"]["spec"]["ports"][0]
    assert service_port["port"] == METRICS_PORT and service_port["targetPort"] == "metrics"


def test_resources_have_requests_and_limits(k8s: dict[str, dict[str, Any]]) -> None:
    resources = _container(k8s)["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind]), f"missing {kind}"


def test_config_from_configmap_and_smtp_password_from_a_mounted_secret_file(k8s: dict[str, dict[str, Any]]) -> None:
    container = _container(k8s)
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    assert container["envFrom"] == [{"configMapRef": {"name": k8s["ConfigMap"]["metadata"]["name"]}}]
    env = {e["name"]: e for e in container["env"]}
    password_file = env["ORDERNOTIFY_SMTP_PASSWORD_FILE"]["value"]
    assert "ORDERNOTIFY_SMTP_PASSWORD" not in env and "ORDERNOTIFY_SMTP_PASSWORD" not in k8s["ConfigMap"]["data"]
    mount = next(m for m in container["volumeMounts"] if password_file.startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert "secretName" in volume["secret"] and mount["readOnly"] is True
    assert all(key.startswith("ORDERNOTIFY_") for key in k8s["ConfigMap"]["data"])


def test_every_configured_variable_is_a_setting_the_code_accepts(compose: dict[str, Any],
                                                                  k8s: dict[str, dict[str, Any]]) -> None:
    known = {env_name(f.name) for f in dataclasses.fields(Settings)}
    consumer_env = {k: v for k, v in compose["services"]["consumer"]["environment"].items() if k.startswith(ENV_PREFIX)}
    for source, env in (("compose", consumer_env), ("configmap", k8s["ConfigMap"]["data"])):
        assert set(env) - known == set(), f"{source} sets variables ordernotify does not read"
        settings = load_settings(environ={k: str(v) for k, v in env.items()})  # raises ConfigError if invalid
        assert settings.metrics_port == METRICS_PORT


def test_pod_runs_as_non_root(k8s: dict[str, dict[str, Any]]) -> None:
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert _container(k8s)["securityContext"]["allowPrivilegeEscalation"] is False
    # SIGTERM grace: the consumer finishes in-flight sends for 20 s, then commits.
    assert pod["terminationGracePeriodSeconds"] > 20
