"""CustomResourceDefinitions for the infra resources, generated from the pydantic models.

pydantic's JSON Schema is not a Kubernetes *structural* schema: it uses ``$ref``/``$defs``,
``anyOf`` with ``null`` for optionals, ``title`` everywhere and ``default: null``. We inline refs,
turn optionals into ``nullable: true``, drop titles and null defaults, drop
``additionalProperties: false`` (the apiserver prunes unknown fields instead) and mark free-form
maps with ``x-kubernetes-preserve-unknown-fields``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from fjord.spec.base import SpecModel
from fjord.spec.infra import (
    GROUP,
    VERSION,
    AppCredentialsSpec,
    AppCredentialsStatus,
    InfraStatus,
    MaskinportenClientSpec,
    MaskinportenClientStatus,
)

_DROP = frozenset({"title", "$defs", "$schema"})


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(v, defs) for v in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _structural(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return {**target, **_structural(extra, defs)}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or (key == "default" and value is None):
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key == "properties":  # field names are not keywords: keep e.g. a field named "title"
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
            continue
        out[key] = _structural(value, defs)
    options = out.pop("anyOf", None)
    if options is not None:
        real = [o for o in options if o.get("type") != "null"]
        if len(real) != 1:
            raise ValueError(f"unions are not structural: {options}")
        merged = {**real[0], **out}
        if len(real) != len(options):
            merged["nullable"] = True
        out = merged
    if out.get("type") == "object" and out.get("additionalProperties") is True:
        del out["additionalProperties"]
        out["x-kubernetes-preserve-unknown-fields"] = True
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI v3 structural schema of ``model`` (camelCase field names)."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    result: dict[str, Any] = _structural(schema, schema.get("$defs", {}))
    return result


_READY = '.status.conditions[?(@.type=="Ready")]'


def _column(name: str, path: str, kind: str = "string", priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        column["priority"] = priority
    return column


def crd_manifest(
    spec_model: type[SpecModel],
    kind: str,
    plural: str,
    short_names: list[str],
    columns: list[dict[str, Any]],
    status_model: type[SpecModel] = InfraStatus,
) -> dict[str, Any]:
    """A namespaced ``apiextensions.k8s.io/v1`` CRD with a status subresource."""
    status = structural_schema(status_model)
    status["x-kubernetes-preserve-unknown-fields"] = True  # kopf keeps handler state here
    root = {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural_schema(spec_model),
            "status": status,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "fjord"}},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["fjord"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        *columns,
                        _column("Ready", f"{_READY}.status"),
                        _column("Reason", f"{_READY}.reason", priority=1),
                        _column("Age", ".metadata.creationTimestamp", "date"),
                    ],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def infra_crds() -> list[dict[str, Any]]:
    """The CRDs of every infra resource fjord renders, in a stable order."""
    return [
        crd_manifest(
            AppCredentialsSpec,
            AppCredentialsSpec.kind,
            AppCredentialsSpec.plural,
            ["appcreds"],
            [
                _column("Protected", ".spec.protected", "boolean"),
                _column("Expires", ".spec.expiresAt", "date"),
            ],
            status_model=AppCredentialsStatus,
        ),
        crd_manifest(
            MaskinportenClientSpec,
            MaskinportenClientSpec.kind,
            MaskinportenClientSpec.plural,
            ["mpclient"],
            [
                _column("Secret", ".spec.secretName"),
                _column("Client", ".status.clientId", priority=1),
            ],
            MaskinportenClientStatus,
        ),
    ]
