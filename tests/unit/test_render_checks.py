"""Pre-publish checks against the Kubernetes OpenAPI schemas and fjord's own rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from fjord.render import CheckError, Item, check_objects, render_spec
from fjord.render.checks import MAX_OBJECT_BYTES
from fjord.spec import parse_app_spec

NS = "ttd-app1"
FILE = "tt02/app1.yaml"


def deployment() -> dict[str, Any]:
    spec = parse_app_spec("org: ttd\napp: app1\nimage: x:1\n")
    release = render_spec(spec, environments=["tt02"])
    docs = list(yaml.safe_load_all(release.manifest("tt02")))
    return next(d for d in docs if d["kind"] == "Deployment")


def failures(*objs: dict[str, Any]) -> list[str]:
    return [str(f) for f in check_objects([Item(FILE, o) for o in objs], NS)]


def test_rendered_platform_objects_pass() -> None:
    assert failures(deployment()) == []


def test_schema_violation_names_object_file_and_field_path() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    assert failures(obj) == [
        f"{FILE}: Deployment/{NS}/app1: spec.template.spec.containers[0].ports[0].containerPort: "
        '"http" is not of type "integer"'
    ]


def test_unknown_fields_are_rejected() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    (found,) = failures(obj)
    assert "spec.template.spec.containers[0]" in found
    assert "'imagePullPolicyy' was unexpected" in found


def test_missing_required_field() -> None:
    obj = deployment()
    del obj["spec"]["selector"]
    (found,) = failures(obj)
    assert found.endswith('spec: "selector" is a required property')


def test_int_or_string_and_quantities_accept_both_forms() -> None:
    obj = deployment()
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container["resources"] = {"requests": {"cpu": 1, "memory": "1Gi"}, "limits": {"cpu": 1.5}}
    obj["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": 1, "maxUnavailable": "10%"}
    assert failures(obj) == []


def test_secrets_must_not_carry_data() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": NS},
        "stringData": {"password": "hunter2"},
    }
    assert failures(secret) == [
        f"{FILE}: Secret/{NS}/creds: stringData: Secrets must not carry data; operators create them"
    ]
    secret.pop("stringData")
    assert failures(secret) == []


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("v1", "Namespace"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("v1", "Pod"),
    ],
)
def test_kinds_outside_the_allow_list_are_rejected(api_version: str, kind: str) -> None:
    obj = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "namespace": NS}}
    (found,) = failures(obj)
    assert found.endswith(f"kind {kind} ({api_version}) is not allowed in an app release")


def test_objects_must_be_in_the_app_namespace() -> None:
    obj = deployment()
    obj["metadata"]["namespace"] = "kube-system"
    assert failures(obj) == [
        f"{FILE}: Deployment/kube-system/app1: metadata.namespace: "
        f"must be the app's namespace '{NS}'"
    ]


def test_invalid_names_and_duplicates() -> None:
    obj = deployment()
    bad = copy.deepcopy(obj)
    bad["metadata"]["name"] = "App_1"
    assert any("is not a valid DNS-1123 name" in f for f in failures(bad))
    assert failures(obj, copy.deepcopy(obj)) == [f"{FILE}: Deployment/{NS}/app1: duplicate object"]


def test_size_bounds() -> None:
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "big", "namespace": NS},
        "data": {"blob": "x" * MAX_OBJECT_BYTES},
    }
    (found,) = failures(config)
    assert f"the limit is {MAX_OBJECT_BYTES}" in found


def test_fjord_custom_resources_are_checked_against_their_crd_schema() -> None:
    client = {
        "apiVersion": "fjord.dev/v1alpha1",
        "kind": "MaskinportenClient",
        "metadata": {"name": "app1", "namespace": NS},
        "spec": {"scopes": [], "secretName": "app1-maskinporten", "extra": 1},
    }
    found = failures(client)
    assert f"{FILE}: MaskinportenClient/{NS}/app1: spec.scopes: [] has less than 1 item" in found
    assert any("'extra' was unexpected" in f for f in found)


def test_route_kinds_use_the_embedded_schemas() -> None:
    route = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": {"name": "app1", "namespace": NS},
        "spec": {"routes": [{"kind": "Rule", "services": [{"name": "app1", "port": 80}]}]},
    }
    assert failures(route) == [
        f'{FILE}: IngressRoute/{NS}/app1: spec.routes[0]: "match" is a required property'
    ]


def test_unknown_version_of_an_allowed_kind() -> None:
    obj = deployment()
    obj["apiVersion"] = "apps/v9"
    (found,) = failures(obj)
    assert "no schema known for apps/v9 Deployment" in found


def test_check_error_lists_every_failure() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": NS}}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {}}
    error = CheckError(check_objects([Item(FILE, pod), Item(FILE, role)], NS))
    assert len(error.failures) == 2
    assert str(error).startswith("2 check failures, nothing was published:")
    assert f"{FILE}: Pod/{NS}/p: kind Pod (v1) is not allowed" in str(error)
