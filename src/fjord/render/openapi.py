"""Offline schema validation of Kubernetes objects.

Kubernetes publishes one OpenAPI v3 document per group/version; the build copies them into the
binary cache (``bin_dir() / OPENAPI_DIR``). For each group/version/kind we resolve every ``$ref``
into one self-contained schema, tighten it (unknown fields are errors, as with the apiserver's
strict field validation) and compile a jsonschema validator once per process.

fjord's own CRDs are validated against the schemas generated from their pydantic models, and the
route kinds of the routing flavours (Traefik, Gateway API) against small embedded schemas.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema

from fjord.render.errors import RenderError
from fjord.render.route_schemas import ROUTE_SCHEMAS
from fjord.spec.crd import infra_crds

OPENAPI_DIR_ENV = "FJORD_OPENAPI_DIR"
_DROP = frozenset({"description", "default", "example", "readOnly"})


def openapi_dir() -> Path:
    """Where the Kubernetes OpenAPI documents are (``$FJORD_OPENAPI_DIR`` overrides)."""
    override = os.environ.get(OPENAPI_DIR_ENV)
    if override:
        return Path(override)
    from fjord.devcluster.binaries import OPENAPI_DIR, bin_dir

    return bin_dir() / OPENAPI_DIR


def _document_name(group: str, version: str) -> str:
    return f"api__{version}_openapi.json" if not group else f"apis__{group}__{version}_openapi.json"


@functools.cache
def _schemas(directory: Path, group: str, version: str) -> dict[str, Any]:
    path = directory / _document_name(group, version)
    try:
        with path.open("rb") as handle:
            schemas: dict[str, Any] = json.load(handle)["components"]["schemas"]
    except FileNotFoundError:
        if not directory.is_dir():
            raise RenderError(
                f"the Kubernetes OpenAPI documents are missing ({directory})",
                hint="run `make setup` to build the binaries and copy the documents",
            ) from None
        return {}
    return schemas


def _tighten(node: dict[str, Any]) -> dict[str, Any]:
    # Objects with declared properties reject unknown fields (like `--validate=strict`).
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        node["additionalProperties"] = False
    if node.get("nullable") is True and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    if node.get("x-kubernetes-int-or-string"):
        node.pop("type", None)
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return node


def _resolve(node: Any, schemas: dict[str, Any], stack: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, schemas, stack) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in stack:  # recursive types (e.g. JSONSchemaProps) are not validated deeper
            return {}
        return _resolve(schemas[name], schemas, (*stack, name))
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":  # a map of field names (which may be "default", "readOnly" …)
            out[key] = {n: _resolve(s, schemas, stack) for n, s in value.items()}
        elif key not in _DROP:
            out[key] = _resolve(value, schemas, stack)
    all_of = out.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1:  # `allOf: [$ref]` is how refs carry docs
        del out["allOf"]
        out = {**all_of[0], **out}
    return _tighten(out)


def _gvks(entry: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    for gvk in entry.get("x-kubernetes-group-version-kind", []):
        yield gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", "")


def _split(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


@functools.cache
def _own_schemas() -> dict[tuple[str, str, str], dict[str, Any]]:
    found: dict[tuple[str, str, str], dict[str, Any]] = dict(ROUTE_SCHEMAS)
    for crd in infra_crds():
        spec = crd["spec"]
        for version in spec["versions"]:
            key = (spec["group"], version["name"], spec["names"]["kind"])
            found[key] = version["schema"]["openAPIV3Schema"]
    return found


def _metadata_schema(directory: Path) -> dict[str, Any]:
    meta: dict[str, Any] = _resolve(
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
        _schemas(directory, "", "v1"),
        (),
    )
    return meta


@functools.cache
def validator_for(
    directory: Path, api_version: str, kind: str
) -> jsonschema.Draft7Validator | None:
    """A compiled validator for ``api_version``/``kind``, or None when no schema is known."""
    group, version = _split(api_version)
    own = _own_schemas().get((group, version, kind))
    if own is not None:
        schema = _resolve(json.loads(json.dumps(own)), {}, ())
        # CRD schemas say only `metadata: {type: object}`; hold them to ObjectMeta like the rest.
        schema["properties"]["metadata"] = _metadata_schema(directory)
        return jsonschema.Draft7Validator(schema)
    schemas = _schemas(directory, group, version)
    for name, entry in schemas.items():
        if (group, version, kind) in set(_gvks(entry)):
            return jsonschema.Draft7Validator(_resolve(entry, schemas, (name,)))
    return None
