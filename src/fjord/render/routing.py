"""The app's public route, in the platform's routing flavour.

All flavours serve ``{org}.apps.{domain}`` with the path prefix ``/{org}/{app}`` unless the spec
overrides the path, and send traffic to the app's Service on port 80.
"""

from __future__ import annotations

from typing import Any

from fjord.spec.app import AppSpec
from fjord.spec.platform import GatewayRouting, IngressRouting, PlatformConfig, TraefikRouting

SERVICE_PORT = 80


def route_path(spec: AppSpec) -> str:
    return spec.routing.path or f"/{spec.org}/{spec.app}"


def _traefik(spec: AppSpec, host: str, path: str, flavour: TraefikRouting) -> dict[str, Any]:
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "spec": {
            "entryPoints": list(flavour.entry_points),
            "routes": [
                {
                    "kind": "Rule",
                    "match": f"Host(`{host}`) && PathPrefix(`{path}`)",
                    "services": [{"name": spec.app, "port": SERVICE_PORT}],
                }
            ],
        },
    }


def _gateway(spec: AppSpec, host: str, path: str, flavour: GatewayRouting) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "spec": {
            "parentRefs": [
                {
                    "group": "gateway.networking.k8s.io",
                    "kind": "Gateway",
                    "name": flavour.gateway_name,
                    "namespace": flavour.gateway_namespace,
                }
            ],
            "hostnames": [host],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": path}}],
                    "backendRefs": [{"name": spec.app, "port": SERVICE_PORT}],
                }
            ],
        },
    }


def _ingress(spec: AppSpec, host: str, path: str, flavour: IngressRouting) -> dict[str, Any]:
    backend = {"service": {"name": spec.app, "port": {"number": SERVICE_PORT}}}
    body: dict[str, Any] = {
        "rules": [
            {
                "host": host,
                "http": {"paths": [{"path": path, "pathType": "Prefix", "backend": backend}]},
            }
        ]
    }
    if flavour.ingress_class_name:
        body["ingressClassName"] = flavour.ingress_class_name
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "spec": body}


def route(
    spec: AppSpec, environment: str, platform: PlatformConfig, metadata: dict[str, Any]
) -> dict[str, Any] | None:
    """The route object, or None when the app disables routing."""
    if not spec.routing.enabled:
        return None
    host = platform.app_host(spec.org, environment)
    path = route_path(spec)
    flavour = platform.routing
    if isinstance(flavour, TraefikRouting):
        obj = _traefik(spec, host, path, flavour)
    elif isinstance(flavour, GatewayRouting):
        obj = _gateway(spec, host, path, flavour)
    else:
        obj = _ingress(spec, host, path, flavour)
    obj["metadata"] = metadata
    return obj
