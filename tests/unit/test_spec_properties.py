"""Property tests: valid specs round-trip, junk never crashes the parser, rendering is
deterministic."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fjord.render import render_spec
from fjord.spec import Problem, SpecError, parse_app_spec

labels = st.from_regex(r"\A[a-z][a-z0-9]{0,10}\Z")
env_names = st.from_regex(r"\A[A-Z_][A-Z0-9_]{0,15}\Z")
plain_values = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20
)
secret_refs = st.builds(
    lambda name, key: {"valueFrom": {"secretKeyRef": {"name": name, "key": key}}},
    labels,
    st.from_regex(r"\A[a-z][a-z0-9._-]{0,10}\Z"),
)
scope = st.from_regex(r"\A[a-z]{1,8}:[a-z]{1,8}(/[a-z.]{1,8})?\Z")
scopes = st.lists(scope, min_size=1, max_size=3)


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    low = draw(st.integers(0, 5))
    document: dict[str, Any] = {
        "org": draw(labels),
        "app": draw(labels),
        "image": "ghcr.io/" + draw(labels) + ":" + draw(st.from_regex(r"\A[0-9]\.[0-9]\Z")),
        "port": draw(st.integers(1, 65535)),
        "replicas": {
            "min": low,
            "max": draw(st.integers(max(low, 1), 10)),
            "cpuTarget": draw(st.integers(1, 100)),
        },
        "env": draw(st.dictionaries(env_names, st.one_of(plain_values, secret_refs), max_size=4)),
        "routing": {"enabled": draw(st.booleans())},
    }
    if draw(st.booleans()):
        document["probes"] = {"readiness": {"path": "/" + draw(labels)}}
    if draw(st.booleans()):
        document["maskinporten"] = {"scopes": sorted(set(draw(scopes)))}
    if draw(st.booleans()):
        names = draw(
            st.lists(st.from_regex(r"\A[a-z]([a-z0-9_]{0,7}[a-z0-9])?\Z"), min_size=1, max_size=3)
        )
        document["postgresql"] = {"databases": [{"name": n} for n in sorted(set(names))]}
    if draw(st.booleans()):
        document["redis"] = {"keyPrefix": draw(labels) + ":"}
    if draw(st.booleans()):
        document["environments"] = {"tt02": {"replicas": {"min": 1, "max": 1}}}
    return document


@given(specs())
@settings(max_examples=60, deadline=None)
def test_valid_specs_round_trip(document: dict[str, Any]) -> None:
    spec = parse_app_spec(yaml.safe_dump(document))
    dumped = spec.model_dump(mode="json", by_alias=True)
    assert parse_app_spec(yaml.safe_dump(dumped)) == spec
    assert spec.app == document["app"]
    assert spec.replicas.max == document["replicas"]["max"]


def _problems(text: str | bytes) -> tuple[Problem, ...] | None:
    """None when ``text`` is a valid spec, else its problems; any other exception propagates."""
    try:
        parse_app_spec(text)
    except SpecError as exc:
        return exc.problems
    return None


junk_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)
)
junk = st.recursive(
    junk_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.sampled_from(
                ["org", "app", "image", "replicas", "min", "max", "env", "chart", "environments"]
            )
            | st.text(max_size=6),
            children,
            max_size=5,
        ),
    ),
    max_leaves=20,
)


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
@settings(max_examples=200, deadline=None)
def test_random_text_raises_only_spec_error(text: str | bytes) -> None:
    problems = _problems(text)
    assert problems is None or (problems and all(p.file == "fjord.yaml" for p in problems))


@given(junk)
@settings(max_examples=200, deadline=None)
def test_random_structures_raise_only_spec_error(data: Any) -> None:
    problems = _problems(yaml.safe_dump(data))
    assert problems is None or len(problems) > 0


@given(specs())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_render_is_deterministic(document: dict[str, Any]) -> None:
    first = render_spec(parse_app_spec(yaml.safe_dump(document)))
    # Same content with keys in another order, parsed afresh: the same bytes.
    reordered = dict(reversed(list(document.items())))
    second = render_spec(parse_app_spec(yaml.safe_dump(reordered, sort_keys=False)))
    assert first.files == second.files
