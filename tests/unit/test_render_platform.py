"""The built-in platform chart: golden output per routing flavour, semantics, determinism.

Regenerate the golden files with ``FJORD_UPDATE_GOLDEN=1 pytest tests/unit/test_render_platform.py``
and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from fjord.render import DynamicConfig, RenderError, render_app, render_spec
from fjord.spec import AppSpec, PlatformConfig, SpecError, default_platform, parse_app_spec
from fjord.spec.platform import GatewayRouting, IngressRouting

TESTS = Path(__file__).resolve().parents[1]
GOLDEN = TESTS / "golden"
FULL_APP = TESTS / "data" / "apps" / "full"

MINIMAL = "org: ttd\napp: app1\nimage: ghcr.io/fjord-demo/app1:1.0.0\n"


def assert_golden(case: str, files: dict[str, bytes]) -> None:
    directory = GOLDEN / case
    if os.environ.get("FJORD_UPDATE_GOLDEN"):
        for path, content in files.items():
            (directory / path).parent.mkdir(parents=True, exist_ok=True)
            (directory / path).write_bytes(content)
    expected = {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*.yaml")}
    assert expected == files, f"golden {case} differs; FJORD_UPDATE_GOLDEN=1 regenerates it"


def objects(content: bytes) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(content)}


def with_routing(routing: Any) -> PlatformConfig:
    return default_platform().model_copy(update={"routing": routing})


def test_full_app_traefik_golden() -> None:
    release = render_app(FULL_APP)
    assert list(release.files) == ["production/full.yaml", "tt02/full.yaml"]
    assert_golden("full-traefik", release.files)


@pytest.mark.parametrize(
    ("case", "routing"),
    [
        ("minimal-gateway", GatewayRouting(flavour="gateway")),
        ("minimal-ingress", IngressRouting(flavour="ingress")),
    ],
)
def test_routing_flavour_golden(case: str, routing: Any) -> None:
    release = render_spec(parse_app_spec(MINIMAL), platform=with_routing(routing))
    assert_golden(case, release.files)


def test_route_per_flavour() -> None:
    spec = parse_app_spec(MINIMAL)
    traefik = objects(render_spec(spec).manifest("tt02"))["IngressRoute"]
    assert traefik["spec"]["routes"][0]["match"] == (
        "Host(`ttd.apps.tt02.fjord.localhost`) && PathPrefix(`/ttd/app1`)"
    )
    gateway = render_spec(spec, platform=with_routing(GatewayRouting(flavour="gateway")))
    route = objects(gateway.manifest("production"))["HTTPRoute"]
    assert route["spec"]["hostnames"] == ["ttd.apps.fjord.localhost"]
    assert route["spec"]["rules"][0]["matches"][0]["path"]["value"] == "/ttd/app1"
    ingress = render_spec(spec, platform=with_routing(IngressRouting(flavour="ingress")))
    rule = objects(ingress.manifest("tt02"))["Ingress"]["spec"]["rules"][0]
    assert rule["host"] == "ttd.apps.tt02.fjord.localhost"


def test_release_metadata_and_layout() -> None:
    release = render_spec(parse_app_spec(MINIMAL), dynamic=DynamicConfig(version=3))
    assert release.namespace == "ttd-app1"
    assert release.environments == ("tt02", "production")
    assert release.dynamic_version == 3
    assert release.builder.startswith("fjord/")
    assert list(release.files) == sorted(release.files)


def test_every_object_has_the_platform_labels_and_namespace() -> None:
    release = render_app(FULL_APP)
    for content in release.files.values():
        for doc in yaml.safe_load_all(content):
            labels = doc["metadata"]["labels"]
            assert doc["metadata"]["namespace"] == "ttd-full"
            assert labels["app.kubernetes.io/managed-by"] == "fjord"
            assert labels["fjord.dev/org"] == "ttd"
            assert labels["fjord.dev/app"] == "full"
            assert labels["app.kubernetes.io/name"] == "full"
            assert labels["app.kubernetes.io/part-of"] == "ttd"


def test_fixed_replicas_have_no_autoscaler() -> None:
    release = render_app(FULL_APP)
    tt02 = objects(release.manifest("tt02"))
    assert "HorizontalPodAutoscaler" not in tt02
    assert "PodDisruptionBudget" not in tt02
    assert tt02["Deployment"]["spec"]["replicas"] == 1
    production = objects(release.manifest("production"))
    hpa = production["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 8)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    assert "replicas" not in production["Deployment"]["spec"]


def test_scaled_to_zero() -> None:
    spec = parse_app_spec(MINIMAL + "replicas: {min: 0, max: 0}\n")
    docs = objects(render_spec(spec).manifest("tt02"))
    assert docs["Deployment"]["spec"]["replicas"] == 0
    assert "HorizontalPodAutoscaler" not in docs


def test_routing_disabled_drops_route_and_controller_ingress() -> None:
    spec = parse_app_spec(MINIMAL + "routing: {enabled: false}\n")
    docs = objects(render_spec(spec).manifest("tt02"))
    assert "IngressRoute" not in docs
    assert docs["NetworkPolicy"]["spec"]["ingress"] == [{"from": [{"podSelector": {}}]}]


def test_infra_resources_and_secret_mounts() -> None:
    docs = objects(render_app(FULL_APP).manifest("production"))
    assert docs["MaskinportenClient"]["spec"] == {
        "scopes": ["altinn:serviceowner/instances.read", "altinn:serviceowner/instances.write"],
        "secretName": "full-maskinporten",
    }
    credentials = docs["AppCredentials"]["spec"]
    assert credentials["postgresql"]["databases"] == [
        {"name": "main", "secretName": "full-pg-main"},
        {"name": "audit_log", "secretName": "full-pg-audit-log"},
    ]
    assert credentials["redis"]["keyPrefix"] == "full:"
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert [v["secret"]["secretName"] for v in pod["volumes"]] == [
        "full-maskinporten",
        "full-pg-main",
        "full-pg-audit-log",
        "full-redis",
    ]


def test_a_credentials_rotation_renames_the_database_and_cache_secrets_only() -> None:
    dynamic = DynamicConfig(3, {"environments": {"production": {"credentialsRotation": 2}}})
    release = render_app(FULL_APP, dynamic=dynamic)
    production = objects(release.manifest("production"))
    credentials = production["AppCredentials"]["spec"]
    assert [d["secretName"] for d in credentials["postgresql"]["databases"]] == [
        "full-pg-main-r2",
        "full-pg-audit-log-r2",
    ]
    assert credentials["redis"]["secretName"] == "full-redis-r2"
    pod = production["Deployment"]["spec"]["template"]["spec"]
    assert [v["secret"]["secretName"] for v in pod["volumes"]] == [
        "full-maskinporten",  # Maskinporten rotates its keys itself
        "full-pg-main-r2",
        "full-pg-audit-log-r2",
        "full-redis-r2",
    ]
    # Only the environment that asked for it; the other keeps its Secrets (and its bytes).
    assert release.manifest("tt02") == render_app(FULL_APP).manifest("tt02")


def test_dynamic_config_changes_replicas_and_scopes_per_environment() -> None:
    dynamic = DynamicConfig(
        version=9,
        values={
            "environments": {
                "production": {"replicas": {"min": 4}, "maskinporten": {"scopes": ["x:y"]}}
            }
        },
    )
    release = render_app(FULL_APP, dynamic=dynamic)
    production = objects(release.manifest("production"))
    assert production["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 4
    assert production["MaskinportenClient"]["spec"]["scopes"] == ["x:y"]
    tt02 = objects(release.manifest("tt02"))
    assert len(tt02["MaskinportenClient"]["spec"]["scopes"]) == 2


def test_invalid_dynamic_config_fails_the_render() -> None:
    dynamic = DynamicConfig(2, {"common": {"port": 0}})
    with pytest.raises(SpecError, match="port"):
        render_app(FULL_APP, dynamic=dynamic)


def test_unknown_environment_is_rejected() -> None:
    spec = parse_app_spec(MINIMAL + "environments: {staging: {port: 9000}}\n")
    with pytest.raises(RenderError, match="unknown environment 'staging'"):
        render_spec(spec)


def test_environments_can_be_selected() -> None:
    release = render_spec(parse_app_spec(MINIMAL), environments=["production"])
    assert list(release.files) == ["production/app1.yaml"]


def test_same_input_same_bytes() -> None:
    spec = parse_app_spec(MINIMAL)
    again = AppSpec.model_validate(spec.model_dump(by_alias=True))
    assert render_spec(spec).files == render_spec(again).files
