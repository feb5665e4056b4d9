"""The app spec loader: validation, located errors and hints, overlays, platform config."""

from __future__ import annotations

import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from fjord.errors import FjordError
from fjord.spec import (
    DynamicConfig,
    Overlay,
    SpecError,
    default_platform,
    load_app_spec,
    load_platform,
    parse_app_spec,
    parse_platform,
    spec_for_environment,
)
from fjord.spec.overlay import deep_merge
from fjord.spec.platform import OciStore
from fjord.spec.schema import app_spec_schema, platform_schema

DATA = Path(__file__).resolve().parents[1] / "data"
FILE = "apps/app1/fjord.yaml"


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_app_spec(textwrap.dedent(text), FILE)
    return [str(p) for p in caught.value.problems]


def test_minimal_spec_gets_the_documented_defaults() -> None:
    spec = parse_app_spec("org: ttd\napp: app1\nimage: ghcr.io/x/app1:1\n")
    assert (spec.replicas.min, spec.replicas.max, spec.replicas.cpu_target) == (2, 6, 75)
    assert spec.port == 8080
    assert spec.routing.enabled is True
    assert spec.namespace == "ttd-app1"


def test_full_example_loads() -> None:
    spec = load_app_spec(DATA / "apps" / "full")
    assert spec.postgresql is not None
    assert [d.name for d in spec.postgresql.databases] == ["main", "audit_log"]
    assert spec.resources.limits.cpu == "1"


def test_typo_gets_a_did_you_mean_hint_with_file_and_line() -> None:
    found = problems(
        """\
        org: ttd
        app: app1
        image: x:1
        replica:
          min: 2
        """
    )
    assert found == [f"{FILE}:4: replica: unknown field (did you mean `replicas`?)"]


def test_nested_typo_hint_uses_the_nested_model_fields() -> None:
    found = problems(
        """\
        org: ttd
        app: app1
        image: x:1
        probes:
          liveness: {path: /h, periodSecond: 3}
        """
    )
    assert found == [
        f"{FILE}:5: probes.liveness.periodSecond: unknown field (did you mean `periodSeconds`?)"
    ]


def test_cross_field_rule_names_the_field_and_line() -> None:
    found = problems(
        """\
        org: ttd
        app: app1
        image: x:1
        replicas:
          min: 3
          max: 2
        """
    )
    assert found == [f"{FILE}:6: replicas.max: must be >= replicas.min (3)"]


def test_wrong_types_are_reported_together() -> None:
    found = problems(
        """\
        org: ttd
        app: App_1
        image: x:1
        port: http
        env:
          OK: 1
          BAD: [1, 2]
        """
    )
    assert len(found) == 3
    assert found[0].startswith(f"{FILE}:2: app: String should match pattern")
    assert found[1].startswith(f"{FILE}:4: port: Input should be a valid integer")
    assert found[2].startswith(f"{FILE}:7: env.BAD: Input should be a valid string")


def test_missing_required_field_points_at_the_parent() -> None:
    found = problems("org: ttd\nimage: x:1\n")
    assert found == [f"{FILE}:1: app: required field is missing"]


def test_secret_env_reference_needs_a_key() -> None:
    found = problems(
        """\
        org: ttd
        app: app1
        image: x:1
        env:
          TOKEN: {valueFrom: {secretKeyRef: {name: s}}}
        """
    )
    assert found == [f"{FILE}:5: env.TOKEN.valueFrom.secretKeyRef.key: required field is missing"]


def test_malformed_yaml_names_file_and_line() -> None:
    found = problems("org: ttd\napp: [app1\nimage: x\n")
    assert len(found) == 1
    assert found[0].startswith(f"{FILE}:")
    assert "malformed YAML" in found[0]
    assert int(found[0].split(":")[1]) >= 2


def test_duplicate_keys_are_errors() -> None:
    assert problems("org: ttd\napp: a\napp: b\nimage: x\n") == [
        f"{FILE}:3: app: duplicate key (first defined on line 2)"
    ]


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n"])
def test_non_mapping_documents_are_rejected(text: str) -> None:
    assert len(problems(text)) == 1


def test_image_is_required_without_chart() -> None:
    assert problems("org: ttd\napp: a\n") == [
        f"{FILE}:1: `image` is required unless the app brings its own `chart`"
    ]


@pytest.mark.parametrize("path", ["../outside", "/etc", "chart/../../x"])
def test_chart_path_must_stay_inside_the_repository(path: str) -> None:
    found = problems(f"org: ttd\napp: a\nchart: {{path: '{path}'}}\n")
    assert found == [f"{FILE}:3: chart.path: must be a relative path inside the app's repository"]


def test_environment_override_errors_point_into_the_override() -> None:
    found = problems(
        """\
        org: ttd
        app: app1
        image: x:1
        environments:
          tt02:
            replicas: {max: 1}
            routing: {enabeld: false}
          production:
            org: other
        """
    )
    assert found == [
        f"{FILE}:6: environments.tt02.replicas.max: must be >= replicas.min (2)",
        f"{FILE}:7: environments.tt02.routing.enabeld: unknown field (did you mean `enabled`?)",
        f"{FILE}:9: environments.production.org: cannot be overridden per environment",
    ]


def test_override_conflicting_with_the_base_is_reported_at_the_override() -> None:
    found = problems(
        """\
        org: ttd
        app: app1
        image: x:1
        environments:
          tt02:
            replicas: {min: 9}
        """
    )
    assert found == [f"{FILE}:5: environments.tt02: replicas.max: must be >= replicas.min (9)"]


def test_spec_error_is_a_fjord_error_with_every_problem_in_the_message() -> None:
    with pytest.raises(FjordError) as caught:
        parse_app_spec("org: ttd\napp: a\nimage: x\nport: 0\nreplica: 1\n", FILE)
    message = str(caught.value)
    assert message.startswith("2 problems in the spec:")
    assert f"{FILE}:4: port:" in message
    assert f"{FILE}:5: replica:" in message


def test_overlay_merge_rules() -> None:
    base = {"env": {"A": "1", "B": "2"}, "list": [1, 2], "replicas": {"min": 2, "max": 6}}
    merged = deep_merge(base, {"env": {"B": None, "C": "3"}, "list": [9], "replicas": {"max": 8}})
    assert merged == {"env": {"A": "1", "C": "3"}, "list": [9], "replicas": {"min": 2, "max": 8}}
    assert base["env"] == {"A": "1", "B": "2"}  # inputs untouched


def test_environment_then_dynamic_config_layering() -> None:
    spec = load_app_spec(DATA / "apps" / "full")
    dynamic = DynamicConfig(
        version=4,
        values={
            "common": {"env": {"FROM_DB": "yes"}},
            "environments": {
                "tt02": {"replicas": {"max": 3}, "maskinporten": {"scopes": ["a:b"]}},
            },
        },
    )
    tt02 = spec_for_environment(spec, "tt02", dynamic.overlays("tt02"))
    assert (tt02.replicas.min, tt02.replicas.max) == (1, 3)
    assert tt02.env["LOG_LEVEL"] == "debug"
    assert "FEATURE_FLAGS" not in tt02.env
    assert tt02.env["FROM_DB"] == "yes"
    assert tt02.maskinporten is not None
    assert tt02.maskinporten.scopes == ["a:b"]
    production = spec_for_environment(spec, "production", dynamic.overlays("production"))
    assert (production.replicas.min, production.replicas.max) == (2, 8)
    assert production.env["FEATURE_FLAGS"] == "a,b"


def test_bad_dynamic_config_is_a_spec_error_naming_its_version() -> None:
    spec = parse_app_spec("org: ttd\napp: a\nimage: x\n")
    dynamic = DynamicConfig(7, {"environments": {"tt02": {"replicas": {"max": 0}}}})
    with pytest.raises(SpecError, match=r"dynamic config v7 environments\.tt02"):
        spec_for_environment(spec, "tt02", dynamic.overlays("tt02"))
    with pytest.raises(SpecError, match="unknown key"):
        DynamicConfig(1, {"replicas": {}})
    with pytest.raises(SpecError, match="cannot be overridden"):
        spec_for_environment(spec, "tt02", [Overlay("dynamic config v2", {"app": "b"})])


def test_default_platform() -> None:
    platform = default_platform()
    assert platform.environment_names == ["tt02", "production"]
    assert sorted(platform.orgs) == ["digdir", "ttd"]
    assert platform.domain == "fjord.localhost"
    assert platform.routing.flavour == "traefik"
    assert platform.app_host("ttd", "tt02") == "ttd.apps.tt02.fjord.localhost"
    assert platform.app_host("ttd", "production") == "ttd.apps.fjord.localhost"
    assert platform.orgs["ttd"].store.kind == "local"
    assert load_platform(None) == platform


def test_platform_config_file() -> None:
    platform = parse_platform(
        textwrap.dedent(
            """\
            domain: example.org
            environments: [{name: test}, {name: prod}]
            routing: {flavour: gateway, gatewayName: edge}
            orgs:
              acme:
                store: {kind: oci, registry: "localhost:5000", plainHttp: true}
                clusters: {test: [{name: test-a}, {name: test-b}]}
            """
        )
    )
    assert platform.routing.flavour == "gateway"
    assert len(platform.orgs["acme"].clusters["test"]) == 2


def test_platform_config_errors_are_located() -> None:
    with pytest.raises(SpecError) as caught:
        parse_platform(
            "domain: example.org\nenvironments: [{name: test}]\n"
            "orgs:\n  acme:\n    store: {kind: s3}\n",
            "platform.yaml",
        )
    assert str(caught.value.problems[0]).startswith("platform.yaml:5: orgs.acme.store")


@pytest.mark.parametrize("prefix", ["/platform", "Platform", "a//b", "a/", "a b"])
def test_a_repository_prefix_that_is_no_oci_path_is_refused(prefix: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_platform(
            "domain: example.org\nenvironments: [{name: test}]\norgs:\n  acme:\n"
            f"    store: {{kind: oci, registry: r.example, repositoryPrefix: '{prefix}'}}\n",
            "platform.yaml",
        )
    problem = str(caught.value.problems[0])
    assert problem.startswith("platform.yaml:5: orgs.acme.store.repositoryPrefix"), problem
    assert "is not an OCI repository path" in problem


def test_a_repository_prefix_may_have_several_components() -> None:
    platform = parse_platform(
        "domain: example.org\nenvironments: [{name: test}]\norgs:\n  acme:\n"
        "    store: {kind: oci, registry: r.example, repositoryPrefix: platform/fjord-x}\n"
    )
    store = platform.orgs["acme"].store
    assert isinstance(store, OciStore)
    assert store.repository_prefix == "platform/fjord-x"


def test_json_schema_accepts_valid_specs_and_partial_overrides() -> None:
    schema = app_spec_schema()
    validator = jsonschema.Draft202012Validator(schema)
    document = yaml.safe_load((DATA / "apps" / "full" / "fjord.yaml").read_text())
    assert list(validator.iter_errors(document)) == []
    document["environments"]["tt02"]["probes"] = {"liveness": {"periodSeconds": 5}}
    assert list(validator.iter_errors(document)) == []
    document["environments"]["tt02"]["replica"] = {}
    assert len(list(validator.iter_errors(document))) == 1


def test_platform_json_schema_describes_routing_flavours() -> None:
    text = str(platform_schema())
    for flavour in ("traefik", "gateway", "ingress"):
        assert flavour in text


def test_a_database_name_that_would_make_an_invalid_secret_name_is_refused() -> None:
    # Found by the determinism property test: "forms_" would become the Secret "app1-pg-forms-".
    found = problems(
        """\
        org: ttd
        app: app1
        image: x:1
        postgresql:
          databases: [{name: forms_}]
        """
    )
    assert len(found) == 1
    assert found[0].startswith(f"{FILE}:5: postgresql.databases[0].name:")
