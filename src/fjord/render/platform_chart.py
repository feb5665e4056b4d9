"""fjord's built-in platform chart, in Python: the objects an app without its own chart gets.

Rendering is plain dict building (no templating), so a thousand apps render in well under a
second. Objects: ServiceAccount, Service, Deployment, HorizontalPodAutoscaler (unless the
replica count is fixed), PodDisruptionBudget (when more than one replica may run),
NetworkPolicy, and the route in the platform's flavour.
"""

from __future__ import annotations

from typing import Any

from fjord.render import names
from fjord.render.infra import secret_mounts
from fjord.render.routing import SERVICE_PORT, route
from fjord.spec.app import AppSpec, Probe, ResourceList, SecretEnv
from fjord.spec.platform import PlatformConfig

CONTAINER = "app"
PORT_NAME = "http"


def _metadata(spec: AppSpec, environment: str) -> dict[str, Any]:
    return {
        "name": spec.app,
        "namespace": spec.namespace,
        "labels": names.labels(spec),
    }


def _quantities(resources: ResourceList) -> dict[str, str]:
    found = {"cpu": resources.cpu, "memory": resources.memory}
    return {k: v for k, v in found.items() if v is not None}


def _probe(spec: AppSpec, probe: Probe) -> dict[str, Any]:
    port: int | str = probe.port if probe.port is not None else PORT_NAME
    return {"httpGet": {"path": probe.path, "port": port}, "periodSeconds": probe.period_seconds}


def _env(spec: AppSpec, environment: str) -> list[dict[str, Any]]:
    platform_env = {
        "FJORD_ORG": spec.org,
        "FJORD_APP": spec.app,
        "FJORD_ENVIRONMENT": environment,
    }
    merged: dict[str, str | SecretEnv] = {**platform_env, **spec.env}
    out: list[dict[str, Any]] = []
    for name in sorted(merged):
        value = merged[name]
        if isinstance(value, SecretEnv):
            ref = value.value_from.secret_key_ref
            selector: dict[str, Any] = {"name": ref.name, "key": ref.key}
            if ref.optional:
                selector["optional"] = True
            out.append({"name": name, "valueFrom": {"secretKeyRef": selector}})
        else:
            out.append({"name": name, "value": value})
    return out


def _container(spec: AppSpec, environment: str) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "ports": [{"name": PORT_NAME, "containerPort": spec.port, "protocol": "TCP"}],
        "env": _env(spec, environment),
        "resources": {
            key: value
            for key, value in (
                ("requests", _quantities(spec.resources.requests)),
                ("limits", _quantities(spec.resources.limits)),
            )
            if value
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if spec.probes.liveness is not None:
        container["livenessProbe"] = _probe(spec, spec.probes.liveness)
    if spec.probes.readiness is not None:
        container["readinessProbe"] = _probe(spec, spec.probes.readiness)
    mounts = secret_mounts(spec)
    if mounts:
        container["volumeMounts"] = [
            {"name": m.volume, "mountPath": m.path, "readOnly": True} for m in mounts
        ]
    return container


def _autoscaled(spec: AppSpec) -> bool:
    return spec.replicas.min != spec.replicas.max


def deployment(spec: AppSpec, environment: str) -> dict[str, Any]:
    selector = names.selector_labels(spec)
    pod_spec: dict[str, Any] = {
        "serviceAccountName": spec.app,
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [_container(spec, environment)],
    }
    mounts = secret_mounts(spec)
    if mounts:
        pod_spec["volumes"] = [
            {"name": m.volume, "secret": {"secretName": m.secret}} for m in mounts
        ]
    body: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "revisionHistoryLimit": 3,
        "progressDeadlineSeconds": 300,
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
        },
        "template": {
            "metadata": {"labels": names.labels(spec)},
            "spec": pod_spec,
        },
    }
    if not _autoscaled(spec):
        # With an HPA the replica count is left out, so a redeploy never resets the scale.
        body["replicas"] = spec.replicas.min
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(spec, environment),
        "spec": body,
    }


def service(spec: AppSpec, environment: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, environment),
        "spec": {
            "type": "ClusterIP",
            "selector": names.selector_labels(spec),
            "ports": [
                {
                    "name": PORT_NAME,
                    "port": SERVICE_PORT,
                    "targetPort": PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def service_account(spec: AppSpec, environment: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(spec, environment),
        "automountServiceAccountToken": False,
    }


def autoscaler(spec: AppSpec, environment: str) -> dict[str, Any] | None:
    if not _autoscaled(spec):
        return None
    target = {"type": "Utilization", "averageUtilization": spec.replicas.cpu_target}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(spec, environment),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.app},
            # minReplicas 0 needs an alpha feature gate; a scaled-to-zero app has min == max.
            "minReplicas": max(spec.replicas.min, 1),
            "maxReplicas": spec.replicas.max,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}],
        },
    }


def disruption_budget(spec: AppSpec, environment: str) -> dict[str, Any] | None:
    if spec.replicas.max < 2:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(spec, environment),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": names.selector_labels(spec)}},
    }


def network_policy(spec: AppSpec, environment: str, platform: PlatformConfig) -> dict[str, Any]:
    """Ingress only from the app's own namespace and, when routed, the routing controller."""
    rules: list[dict[str, Any]] = [{"from": [{"podSelector": {}}]}]
    if spec.routing.enabled:
        controller = platform.routing.controller_namespace
        rules.append(
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": controller}
                        }
                    }
                ],
                "ports": [{"port": spec.port, "protocol": "TCP"}],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(spec, environment),
        "spec": {
            "podSelector": {"matchLabels": names.selector_labels(spec)},
            "policyTypes": ["Ingress"],
            "ingress": rules,
        },
    }


def platform_objects(
    spec: AppSpec, environment: str, platform: PlatformConfig
) -> list[dict[str, Any]]:
    """Every object of the platform chart for ``spec`` in ``environment``."""
    found = [
        service_account(spec, environment),
        service(spec, environment),
        deployment(spec, environment),
        autoscaler(spec, environment),
        disruption_budget(spec, environment),
        network_policy(spec, environment, platform),
        route(spec, environment, platform, _metadata(spec, environment)),
    ]
    return [obj for obj in found if obj is not None]
