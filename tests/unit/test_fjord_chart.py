"""deploy/charts/fjord: lint-clean, renders with default and production-like values, every object
valid against the shipped Kubernetes schemas and Pod Security "restricted"; bad values refused
with the field named. Also the image's lock and the chart's CRDs stay in step with the repo."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import helm_python
import pytest

from fjord.devcluster import fjordchart, fjordimage
from fjord.render import openapi
from fjord.render.podsecurity import DEFAULT_POLICY, policy_failures

ROOT = Path(__file__).resolve().parents[2]
# Prometheus Operator's kinds: no schema ships with Kubernetes; checked for shape below.
MONITORING = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
# Cluster-level kinds apps never ship, so fjord's schema file leaves them out: the apiserver
# checks them when tests/integration/test_fjord_install.py applies the chart.
NOT_SHIPPED = {
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
}

PRODUCTION: dict[str, Any] = {
    "image": {
        "repository": "registry.example.com/platform/fjord",
        "tag": "0.1.0",
        "digest": "sha256:" + "ab" * 32,
    },
    "imagePullSecrets": [{"name": "registry"}],
    "controlPlane": {
        "replicas": 3,
        "publicUrl": "https://fjord.example.com",
        "platformConfig": "orgs: []\n",
        "legacySignatures": {"enabled": True},
        "oidc": {"enabled": True, "issuer": "https://login.example.com", "clientId": "fjord"},
        "gitea": {"url": "https://git.example.com", "token": {"existingSecret": "gitea"}},
        "ingress": {"enabled": True, "className": "traefik", "tls": {"secretName": "fjord-tls"}},
        "extraEnv": [{"name": "FJORD_POLL_SECONDS", "value": "2"}],
        "affinity": {"podAntiAffinity": {}},
    },
    "operators": {
        "namespaces": ["ttd-skjema", "digdir-varsel"],
        "maskinporten": {"enabled": True, "options": {"api-url": "https://digdir.example"}},
        "workloads": {"eventsUrl": "http://notification-controller.flux-system.svc/"},
    },
    "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
}


def _schema_errors(obj: dict[str, Any]) -> list[str]:
    validator = openapi.validator_for(fjordchart.KUBERNETES, obj["apiVersion"], obj["kind"])
    assert validator is not None, f"no schema for {obj['apiVersion']}/{obj['kind']}"
    return [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(obj)]


@pytest.mark.parametrize("values", [{}, PRODUCTION], ids=["default", "production"])
def test_the_chart_lints_clean_and_every_object_is_valid(values: dict[str, Any]) -> None:
    assert fjordchart.lint(values) == []
    objects = fjordchart.objects(values)
    kinds = {o["kind"] for o in objects}
    assert {"CustomResourceDefinition", "Deployment", "Service", "PodDisruptionBudget"} <= kinds
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in MONITORING:
            assert obj["apiVersion"] == "monitoring.coreos.com/v1", name
            continue
        if obj["kind"] not in NOT_SHIPPED:
            assert _schema_errors(obj) == [], name
        assert policy_failures(obj, "fjord-system", DEFAULT_POLICY) == [], name


def _by(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_default_values_run_two_control_plane_replicas_and_three_operators() -> None:
    objects = fjordchart.objects()
    deployments = _by(objects, "Deployment")
    assert set(deployments) == {
        "fjord-control-plane",
        "fjord-operator-credentials",
        "fjord-operator-janitor",
        "fjord-operator-workloads",
    }
    control = deployments["fjord-control-plane"]["spec"]
    assert control["replicas"] == 2
    assert control["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = control["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False  # it never talks to Kubernetes
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["FJORD_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "fjord-database",
        "key": "url",
    }
    assert env["FJORD_LOG_FORMAT"]["value"] == "json"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/var/lib/fjord/cosign.key"]["subPath"] == "cosign.key"
    operator = deployments["fjord-operator-credentials"]["spec"]
    assert operator["strategy"] == {"type": "Recreate"}
    assert operator["replicas"] == 1
    args = operator["template"]["spec"]["containers"][0]["args"]
    assert "--only=credentials" in args
    assert "--all-namespaces" in args
    assert set(_by(objects, "ClusterRoleBinding")) == {
        "fjord-operator-credentials",
        "fjord-operator-janitor",
        "fjord-operator-workloads",
    }


def test_watched_namespaces_get_role_bindings_only_there() -> None:
    objects = fjordchart.objects(PRODUCTION)
    assert _by(objects, "ClusterRoleBinding") == {}
    bindings = [o for o in objects if o["kind"] == "RoleBinding"]
    watched = {(b["metadata"]["namespace"], b["metadata"]["name"]) for b in bindings}
    for operator in ("credentials", "janitor", "maskinporten", "workloads"):
        for namespace in ("ttd-skjema", "digdir-varsel"):
            assert (namespace, f"fjord-operator-{operator}") in watched
    # The credentials operator reads its admin Secret, and only that one, in fjord-system.
    admin = _by(objects, "Role")["fjord-operator-credentials-admin"]
    assert admin["metadata"]["namespace"] == "fjord-system"
    assert admin["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["credentials-admin"],
            "verbs": ["get"],
        }
    ]
    image = _by(objects, "Deployment")["fjord-control-plane"]["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    assert image == f"registry.example.com/platform/fjord:0.1.0@sha256:{'ab' * 32}"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"operators": {"namespaces": ["Not_A_Namespace"]}}, "/operators/namespaces/0"),
        ({"controlPlane": {"replicas": 0}}, "/controlPlane/replicas"),
        ({"image": {"digest": "latest"}}, "/image/digest"),
        ({"controlPlane": {"replicaz": 2}}, "replicaz"),
        ({"logFormat": "xml"}, "/logFormat"),
    ],
)
def test_bad_values_are_refused_naming_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(helm_python.HelmError) as refused:
        fjordchart.objects(values)
    assert field in str(refused.value)
    assert any(field in message for message in fjordchart.lint(values))


def test_the_chart_ships_the_repository_crds() -> None:
    shipped = sorted(p.name for p in (fjordchart.CHART / "crds").glob("*.yaml"))
    assert shipped == sorted(p.name for p in (ROOT / "deploy" / "crds").glob("*.yaml"))
    for name in shipped:
        assert (fjordchart.CHART / "crds" / name).read_bytes() == (
            ROOT / "deploy" / "crds" / name
        ).read_bytes(), f"deploy/charts/fjord/crds/{name} differs from deploy/crds/{name}"


def test_the_image_lock_pins_every_dependency_as_pyproject_does() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = {
        line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
        for line in fjordimage.LOCK.read_text().splitlines()
        if line and not line.startswith("#")
    }
    for requirement in project["dependencies"]:
        name, version = requirement.split("==")
        name = name.split("[")[0].lower().replace("_", "-")
        assert locked.get(name) == version, f"{name}: pyproject {version}, lock {locked.get(name)}"
