"""Kubernetes schemas shipped in fjord, chosen per platform (generation: tests/integration)."""

from __future__ import annotations

import pytest

from fjord.render import RenderError, render_spec
from fjord.render.openapi import kubernetes_minor, shipped_versions
from fjord.spec import parse_app_spec
from fjord.spec.platform import DEFAULT_KUBERNETES_VERSION, default_platform


def test_the_platform_chooses_the_kubernetes_version() -> None:
    assert DEFAULT_KUBERNETES_VERSION in shipped_versions()
    spec = parse_app_spec("org: ttd\napp: app1\nimage: x:1\n")
    platform = default_platform()
    assert platform.kubernetes_version == DEFAULT_KUBERNETES_VERSION
    render_spec(spec, platform=platform, environments=["tt02"])
    older = platform.model_copy(update={"kubernetes_version": "1.20"})
    with pytest.raises(RenderError) as caught:
        render_spec(spec, platform=older, environments=["tt02"])
    assert "no schemas for Kubernetes 1.20" in str(caught.value)
    assert DEFAULT_KUBERNETES_VERSION in str(caught.value.hint)


@pytest.mark.parametrize(
    ("given", "minor"), [("v1.36.3", "1.36"), ("1.36", "1.36"), (" 1.9.0 ", "1.9")]
)
def test_kubernetes_minor(given: str, minor: str) -> None:
    assert kubernetes_minor(given) == minor


def test_a_bad_kubernetes_version_is_refused_by_the_platform_config() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="kubernetesVersion"):
        default_platform().model_validate(
            {**default_platform().model_dump(by_alias=True), "kubernetesVersion": "latest"}
        )
