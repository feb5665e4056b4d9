"""The checks' validator (jsonschema-rs) answers "valid?" as jsonschema's Draft7Validator does.

Differential tests: random schemas and instances, and mutations of rendered objects against the
shipped Kubernetes, CRD and route schemas. (Patterns are searched by Rust's regex engine, where
``$`` does not match before a trailing newline as Python's does; the random strings avoid
newlines so that difference, which only makes fjord stricter, does not show up here.)
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import jsonschema_rs
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fjord.render import render_spec
from fjord.render.checks import ALLOWED_KINDS
from fjord.render.openapi import _own_schemas, schema_for, validator_for
from fjord.spec import parse_app_spec
from fjord.spec.platform import (
    DEFAULT_KUBERNETES_VERSION,
    GatewayRouting,
    IngressRouting,
    TraefikRouting,
    default_platform,
)

K8S = DEFAULT_KUBERNETES_VERSION

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.sampled_from([0, 1, 1.0, 2.5, True, False, "", "a", "80", "http", "25%", "x" * 70]),
    st.text(alphabet=st.characters(blacklist_characters="\n"), max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["a", "b", "c", "name", "port", "x"]), inner, max_size=4),
    ),
    max_leaves=12,
)

_types = st.sampled_from(["object", "array", "string", "integer", "number", "boolean", "null"])


def _schemas(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keyword = st.one_of(
        st.tuples(st.just("type"), st.one_of(_types, st.lists(_types, max_size=3))),
        st.tuples(
            st.just("properties"),
            st.dictionaries(st.sampled_from(["a", "b", "name", "port"]), inner, max_size=3),
        ),
        st.tuples(st.just("additionalProperties"), st.one_of(st.booleans(), inner)),
        st.tuples(st.just("required"), st.lists(st.sampled_from(["a", "b", "name"]), max_size=2)),
        st.tuples(st.just("items"), inner),
        st.tuples(st.just("oneOf"), st.lists(inner, min_size=1, max_size=3)),
        st.tuples(st.just("anyOf"), st.lists(inner, min_size=1, max_size=3)),
        st.tuples(st.just("pattern"), st.sampled_from(["^a", "[0-9]+", "^$", "b$"])),
        st.tuples(st.just("minLength"), st.integers(0, 3)),
        st.tuples(st.just("maxLength"), st.integers(0, 3)),
        st.tuples(st.just("minItems"), st.integers(0, 3)),
        st.tuples(st.just("maxItems"), st.integers(0, 3)),
        st.tuples(st.just("format"), st.sampled_from(["int-or-string", "date-time", "int32"])),
        # Keywords the Kubernetes schemas do not use, and ones validators ignore.
        st.tuples(st.just("enum"), st.lists(scalars, min_size=1, max_size=3)),
        st.tuples(st.just("minimum"), st.integers(-2, 2)),
        st.tuples(st.just("not"), inner),
        st.tuples(st.just("x-kubernetes-int-or-string"), st.booleans()),
        st.tuples(st.just("nullable"), st.booleans()),
    )
    return st.lists(keyword, max_size=4).map(dict)


schemas = st.recursive(st.one_of(st.booleans(), st.just({})), _schemas, max_leaves=8)


@SETTINGS
@given(schema=schemas, instances=st.lists(json_values, min_size=1, max_size=6))
def test_random_schemas_and_instances_agree_with_jsonschema(
    schema: Any, instances: list[Any]
) -> None:
    validator = jsonschema.Draft7Validator(schema)
    try:
        fast = jsonschema_rs.Draft7Validator(schema, validate_formats=False, offline=True)
    except jsonschema_rs.ValidationError:
        # jsonschema-rs refuses schemas that break the meta-schema; so does jsonschema's check.
        with pytest.raises(jsonschema.SchemaError):
            jsonschema.Draft7Validator.check_schema(schema)
        return
    for instance in instances:
        assert fast.is_valid(instance) == validator.is_valid(instance), (schema, instance)


def _rendered_objects() -> list[dict[str, Any]]:
    spec = parse_app_spec(
        """
org: ttd
app: app1
image: ghcr.io/ttd/app1:1.0
port: 5005
probes: {liveness: {path: /health}, readiness: {path: /ready, periodSeconds: 5}}
env:
  A: b
  KEY: {valueFrom: {secretKeyRef: {name: app1-platform, key: apiKey}}}
maskinporten: {scopes: ["altinn:serviceowner/instances.read"]}
postgresql: {databases: [{name: forms}]}
redis: {keyPrefix: "app1:", commands: ["+@read"]}
"""
    )
    objects: list[dict[str, Any]] = []
    routings = (
        TraefikRouting(),
        GatewayRouting(flavour="gateway"),
        IngressRouting(flavour="ingress"),
    )
    for routing in routings:
        platform = default_platform().model_copy(update={"routing": routing})
        release = render_spec(spec, platform=platform, check=False)
        for data in release.files.values():
            objects.extend(d for d in yaml.safe_load_all(data) if d)
    return objects


OBJECTS = _rendered_objects()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _mutate(obj: dict[str, Any], path: tuple[Any, ...], action: str, value: Any) -> Any:
    obj = copy.deepcopy(obj)
    if not path:
        return value if action == "replace" else obj
    parent = obj
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if action == "replace":
        parent[last] = value
    elif action == "delete":
        del parent[last]
    elif isinstance(parent[last], dict):
        parent[last]["unexpectedField"] = value
    elif isinstance(parent[last], list):
        parent[last].append(value)
    return obj


def _both(api_version: str, kind: str) -> tuple[Any, jsonschema.Draft7Validator]:
    schema = schema_for(K8S, api_version, kind)
    assert schema is not None
    fast = validator_for(K8S, api_version, kind)
    return fast, jsonschema.Draft7Validator(schema)


@pytest.mark.parametrize("index", range(len(OBJECTS)))
def test_rendered_objects_are_valid_both_ways(index: int) -> None:
    obj = OBJECTS[index]
    fast, slow = _both(obj["apiVersion"], obj["kind"])
    assert fast.is_valid(obj) is True
    assert slow.is_valid(obj)


@SETTINGS
@given(data=st.data())
def test_mutated_kubernetes_objects_agree_with_jsonschema(data: st.DataObject) -> None:
    obj = data.draw(st.sampled_from(OBJECTS))
    fast, slow = _both(obj["apiVersion"], obj["kind"])
    path = data.draw(st.sampled_from(_paths(obj)))
    action = data.draw(st.sampled_from(["replace", "delete", "add"]))
    value = data.draw(json_values)
    mutated = _mutate(obj, path, action, value)
    assert fast.is_valid(mutated) == slow.is_valid(mutated), (path, action, value)
    # Both name the same fields when they fail.
    fast_paths = {tuple(e.instance_path) for e in fast.iter_errors(mutated)}
    slow_paths = {tuple(e.absolute_path) for e in slow.iter_errors(mutated)}
    assert fast_paths == slow_paths, (path, action, value)


def test_every_allowed_kind_compiles() -> None:
    compiled = 0
    for group, kind in ALLOWED_KINDS:
        for version in ("v1", "v2", "v1alpha1", "v1beta1"):
            api_version = f"{group}/{version}" if group else version
            if schema_for(K8S, api_version, kind) is not None:
                fast, slow = _both(api_version, kind)
                assert fast.is_valid({}) == slow.is_valid({})
                compiled += 1
    assert compiled >= len(ALLOWED_KINDS)


def test_own_crd_and_route_schemas_compile_and_agree() -> None:
    for group, version, kind in _own_schemas():
        fast, slow = _both(f"{group}/{version}", kind)
        assert fast.is_valid({}) == slow.is_valid({})
