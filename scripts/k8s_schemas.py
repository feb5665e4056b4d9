#!/usr/bin/env python3
"""Generate the Kubernetes schemas fjord ships (``src/fjord/render/kubernetes/v<minor>.json.gz``).

The pre-publish checks validate every rendered object against Kubernetes' OpenAPI v3 schema of
its kind. A ``pip install``ed fjord has no Go module cache, so the definitions the checks need —
the kinds an app may ship (``fjord.render.checks.ALLOWED_KINDS``), ObjectMeta, and everything they
reference — are shipped as package data, without descriptions, one gzip file per Kubernetes
minor version. Regenerate after bumping Kubernetes in ``tools/k8s/go.mod``::

    .venv/bin/python scripts/k8s_schemas.py                  # from tools/k8s's module cache
    .venv/bin/python scripts/k8s_schemas.py --source DIR --version v1.35.4   # any openapi-spec/v3

``tests/integration/test_k8s_schemas_generated.py`` checks that the shipped file equals what
this script generates from the module cache.

Why not the kubernetes-validate package: its 1.37.0 wheel is 22 MB (72 MB, 17k files unpacked,
every kind of every version) of schemas converted from the Swagger 2.0 document, while the
checks need ~200 definitions of one version (7.6 KB here) from the OpenAPI v3 documents, which
carry nullability and int-or-string markers the checks rely on.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fjord.render.checks import ALLOWED_KINDS
from fjord.render.openapi import (
    DOC_KEYS,
    FORMAT,
    OBJECT_META,
    kubernetes_minor,
    schema_file,
)

ROOT = Path(__file__).resolve().parents[1]
TOOLS_K8S = ROOT / "tools" / "k8s"
OUTPUT_DIR = ROOT / "src" / "fjord" / "render" / "kubernetes"
# Extensions the checks act on (see openapi._tighten); every other x-kubernetes-* key is dropped.
KEPT_EXTENSIONS = frozenset({"x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string"})


def module_source(tools_dir: Path = TOOLS_K8S) -> tuple[Path, str]:
    """The OpenAPI v3 directory of the Kubernetes module ``tools/k8s`` pins, and its version."""
    out = subprocess.run(
        ["go", "list", "-m", "-json", "k8s.io/kubernetes"],
        cwd=tools_dir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = json.loads(out)
    return Path(module["Dir"]) / "api" / "openapi-spec" / "v3", str(module["Version"])


def _documents(source: Path) -> Iterator[dict[str, Any]]:
    groups = {group for group, _ in ALLOWED_KINDS}
    for path in sorted(source.glob("*_openapi.json")):
        name = path.name
        if name.startswith("api__"):
            group = ""
        elif name.startswith("apis__") and name.count("__") == 2:
            group = name.split("__")[1]
        else:
            continue  # discovery documents (api_openapi.json …) carry no kinds
        if group in groups:
            with path.open("rb") as handle:
                yield json.load(handle)["components"]["schemas"]


def _trim(node: Any) -> Any:
    if isinstance(node, list):
        return [_trim(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":  # field names, which may be "default", "description" …
            out[key] = {name: _trim(sub) for name, sub in value.items()}
        elif key in DOC_KEYS or (key.startswith("x-kubernetes-") and key not in KEPT_EXTENSIONS):
            continue
        else:
            out[key] = _trim(value)
    return out


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _refs(item)
    elif isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref.rsplit("/", 1)[-1]
        for value in node.values():
            yield from _refs(value)


def generate(source: Path, version: str) -> dict[str, Any]:
    """The shipped document: ``kinds`` ("group/version/Kind" → definition) and ``definitions``."""
    everything: dict[str, Any] = {}
    kinds: dict[str, str] = {}
    for schemas in _documents(source):
        everything.update(schemas)
        for name, entry in schemas.items():
            for gvk in entry.get("x-kubernetes-group-version-kind", []):
                group, kind = gvk.get("group", ""), gvk.get("kind", "")
                if (group, kind) in ALLOWED_KINDS:
                    kinds[f"{group}/{gvk['version']}/{kind}"] = name
    if OBJECT_META not in everything:
        raise SystemExit(f"{source}: no {OBJECT_META}; is this an OpenAPI v3 directory?")
    wanted, pending = set(), [*kinds.values(), OBJECT_META]
    while pending:
        name = pending.pop()
        if name not in wanted:
            wanted.add(name)
            pending.extend(_refs(everything[name]))
    return {
        "format": FORMAT,
        "kubernetes": version,
        "kinds": dict(sorted(kinds.items())),
        "definitions": {name: _trim(everything[name]) for name in sorted(wanted)},
    }


def encode(document: dict[str, Any]) -> bytes:
    """Canonical JSON, gzip without a timestamp: the same input always gives the same bytes."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return gzip.compress(text, compresslevel=9, mtime=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, help="an api/openapi-spec/v3 directory")
    parser.add_argument("--version", help="its Kubernetes version, e.g. v1.36.3")
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    args = parser.parse_args(argv)
    if (args.source is None) != (args.version is None):
        parser.error("--source and --version go together")
    source, version = (args.source, args.version) if args.source else module_source()
    document = generate(source, version)
    target = args.output_dir / schema_file(kubernetes_minor(version))
    target.write_bytes(encode(document))
    print(f"{target}: {len(document['kinds'])} kinds, {len(document['definitions'])} definitions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
