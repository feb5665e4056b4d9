"""The shipped Kubernetes schemas are what scripts/k8s_schemas.py generates from the module cache.

Needs Go and the Kubernetes module that tools/k8s pins (``make setup`` downloads it).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from fjord.render.openapi import DOC_KEYS, kubernetes_minor, schema_file
from fjord.spec.platform import DEFAULT_KUBERNETES_VERSION

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
