"""Schemas of the route kinds of the routing flavours, whose CRDs are not part of Kubernetes.

They cover the fields fjord's platform chart writes (and a chart typically uses) and leave the
rest open, so they catch structural mistakes without pinning a Traefik or Gateway API version.
"""

from __future__ import annotations

from typing import Any

_OPEN: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
_PORT: dict[str, Any] = {"x-kubernetes-int-or-string": True}


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "x-kubernetes-preserve-unknown-fields": True,
    }


def _root(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
        },
    }


_TRAEFIK_SERVICE = _object({"name": {"type": "string"}, "port": _PORT}, ["name"])
_TRAEFIK_ROUTE = _object(
    {
        "kind": {"type": "string", "enum": ["Rule"]},
        "match": {"type": "string", "minLength": 1},
        "services": {"type": "array", "items": _TRAEFIK_SERVICE},
        "middlewares": {"type": "array", "items": _OPEN},
    },
    ["match"],
)
INGRESS_ROUTE = _root(
    _object(
        {
            "entryPoints": _STRINGS,
            "routes": {"type": "array", "minItems": 1, "items": _TRAEFIK_ROUTE},
            "tls": _OPEN,
        },
        ["routes"],
    )
)

_PARENT_REF = _object(
    {
        "group": {"type": "string"},
        "kind": {"type": "string"},
        "name": {"type": "string", "minLength": 1},
        "namespace": {"type": "string"},
        "sectionName": {"type": "string"},
        "port": {"type": "integer"},
    },
    ["name"],
)
_BACKEND_REF = _object(
    {"name": {"type": "string", "minLength": 1}, "port": {"type": "integer"}}, ["name"]
)
_PATH_MATCH = _object(
    {
        "type": {"type": "string", "enum": ["Exact", "PathPrefix", "RegularExpression"]},
        "value": {"type": "string"},
    },
    [],
)
_HTTP_ROUTE_RULE = _object(
    {
        "matches": {"type": "array", "items": _object({"path": _PATH_MATCH}, [])},
        "backendRefs": {"type": "array", "items": _BACKEND_REF},
        "filters": {"type": "array", "items": _OPEN},
    },
    [],
)
HTTP_ROUTE = _root(
    _object(
        {
            "parentRefs": {"type": "array", "items": _PARENT_REF},
            "hostnames": _STRINGS,
            "rules": {"type": "array", "items": _HTTP_ROUTE_RULE},
        },
        [],
    )
)

ROUTE_SCHEMAS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("traefik.io", "v1alpha1", "IngressRoute"): INGRESS_ROUTE,
    ("traefik.io", "v1alpha1", "Middleware"): _root(_OPEN),
    ("gateway.networking.k8s.io", "v1", "HTTPRoute"): HTTP_ROUTE,
}
