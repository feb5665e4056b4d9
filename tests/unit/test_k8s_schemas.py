"""Kubernetes schemas shipped in fjord: generated from the pinned module, chosen per platform."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fjord.render import RenderError, render_spec
from fjord.render.openapi import DOC_KEYS, kubernetes_minor, schema_file, shipped_versions
from fjord.spec import parse_app_spec
from fjord.spec.platform import DEFAULT_KUBERNETES_VERSION, default_platform

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "src" / "fjord" / "render" / "kubernetes"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_schemas", ROOT / "scripts/k8s_schemas.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _documentation(node: Any) -> set[str]:
    """DOC_KEYS anywhere in a schema, except as field names in ``properties``."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= _documentation(item)
    elif isinstance(node, dict):
        found |= node.keys() & DOC_KEYS
        for key, value in node.items():
            children = value.values() if key == "properties" else [value]
            for child in children:
                found |= _documentation(child)
    return found


def test_shipped_schemas_are_what_the_script_generates_from_the_pinned_module() -> None:
    script = _script()
    source, version = script.module_source()
    generated = script.generate(source, version)
    path = SHIPPED / schema_file(kubernetes_minor(version))
    assert json.loads(gzip.decompress(path.read_bytes())) == generated, (
        "run .venv/bin/python scripts/k8s_schemas.py and commit the result"
    )
    # The default is the version the clusters run (tools/k8s builds them).
    assert kubernetes_minor(version) == DEFAULT_KUBERNETES_VERSION
    # Every kind an app may ship from Kubernetes itself is in there, with no documentation.
    assert {"apps/v1/Deployment", "/v1/Service", "batch/v1/CronJob"} <= set(generated["kinds"])
    assert _documentation(generated["definitions"]) == set()


def test_the_generator_is_deterministic(tmp_path: Path) -> None:
    script = _script()
    source, version = script.module_source()
    assert (
        script.main(["--source", str(source), "--version", version, "--output-dir", str(tmp_path)])
        == 0
    )
    again = tmp_path / "again"
    again.mkdir()
    script.main(["--source", str(source), "--version", version, "--output-dir", str(again)])
    name = schema_file(kubernetes_minor(version))
    assert (tmp_path / name).read_bytes() == (again / name).read_bytes()


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
