"""deploy/kubernetes/consumer.yaml: a Deployment of consumers whose arguments the consumer's own
parser accepts, probed on /healthz and /readyz of its metrics port, given time to drain, with
settings that exist and secrets kept in a Secret."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import yaml

from audit_logging.settings import Settings
from tests.deploy._assets import KUBERNETES, consumer_args

_SPECS = {
    field.metadata["spec"].env: field.metadata["spec"] for field in dataclasses.fields(Settings)
}


def _documents() -> dict[str, dict[str, Any]]:
    documents = list(yaml.safe_load_all(KUBERNETES.read_text()))
    by_kind = {document["kind"]: document for document in documents}
    assert len(by_kind) == len(documents), "two documents of one kind"
    return by_kind


def _deployment() -> dict[str, Any]:
    deployment: dict[str, Any] = _documents()["Deployment"]
    return deployment


def _container() -> dict[str, Any]:
    (container,) = _deployment()["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def _args() -> argparse.Namespace:
    container = _container()
    assert container["command"] == ["python", "-m", "audit_logging.consumer"]
    assert all(isinstance(arg, str) for arg in container["args"]), "Kubernetes wants strings"
    return consumer_args(container["args"])


def _probe_port(probe: dict[str, Any]) -> int:
    port = probe["httpGet"]["port"]
    if isinstance(port, str):  # a named port of the container
        (port,) = [p["containerPort"] for p in _container()["ports"] if p["name"] == port]
    assert isinstance(port, int)
    return port


def test_the_consumer_accepts_the_arguments_and_serves_metrics_beyond_loopback() -> None:
    args = _args()
    assert args.metrics_host == "0.0.0.0"
    ports = [p["containerPort"] for p in _container()["ports"]]
    assert int(args.metrics_port) in ports


def test_liveness_and_readiness_probe_the_metrics_port() -> None:
    container = _container()
    port = int(_args().metrics_port)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert _probe_port(container["livenessProbe"]) == port
    assert _probe_port(container["readinessProbe"]) == port


def test_replicas_form_a_group_with_standbys_and_time_to_drain() -> None:
    spec = _deployment()["spec"]
    assert spec["replicas"] >= 2
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] > _args().shutdown_timeout
    budget = _documents()["PodDisruptionBudget"]["spec"]
    assert budget["selector"] == spec["selector"]
    assert budget["minAvailable"] < spec["replicas"]


def test_settings_exist_and_secrets_stay_in_the_secret() -> None:
    container = _container()
    config_map = _documents()["ConfigMap"]
    (source,) = container["envFrom"]
    assert source["configMapRef"]["name"] == config_map["metadata"]["name"]
    for name in config_map["data"]:
        assert name in _SPECS, f"{name} is not a setting"
        assert not _SPECS[name].secret, f"{name} is a secret: keep it in a Secret"
    for variable in container["env"]:
        assert variable["name"] in _SPECS, variable["name"]
        assert "value" not in variable, f"{variable['name']}: from a Secret, not inline"
        assert variable["valueFrom"]["secretKeyRef"]["key"] == variable["name"]
    secret_settings = {name for name, spec in _SPECS.items() if spec.secret}
    given = {variable["name"] for variable in container["env"]}
    assert {"RABBITMQ_STREAM_PASSWORD", "OPENSEARCH_PASSWORD"} <= given & secret_settings


def test_the_signing_key_file_is_mounted_where_the_setting_says() -> None:
    key_file = _documents()["ConfigMap"]["data"]["AUDIT_LOG_SIGNING_KEY_FILE"]
    mounts = {m["name"]: m["mountPath"] for m in _container()["volumeMounts"]}
    volumes = {v["name"]: v for v in _deployment()["spec"]["template"]["spec"]["volumes"]}
    (item,) = volumes["signing-key"]["secret"]["items"]
    assert key_file == f"{mounts['signing-key']}/{item['path']}"


def test_the_container_runs_unprivileged() -> None:
    pod = _deployment()["spec"]["template"]["spec"]
    context = _container()["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
