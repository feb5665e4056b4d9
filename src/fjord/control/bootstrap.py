"""One-time manifests that make a cluster follow its org's sync root and report to fjord.

The only place Secrets appear: the cosign public key, the per-cluster HMAC token (used by the
Provider to sign events and by the Receiver to check fjord's calls) and, if the store needs
them, registry credentials or (Azure Blob) a read-only SAS for the org's container. Applied
once per cluster; everything else arrives through Flux.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from fjord.control import flux
from fjord.control.settings import ControlSettings
from fjord.control.stores import BucketSource, flux_source, read_sas

Obj = dict[str, Any]

# Lets the namespaced ``admin`` role (which the deployer is bound to) manage fjord's infra CRs.
INFRA_ROLE: Obj = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {
        "name": "fjord-infra-admin",
        "labels": {
            "rbac.authorization.k8s.io/aggregate-to-admin": "true",
            flux.MANAGED_LABEL: "fjord",
        },
    },
    "rules": [
        {
            "apiGroups": ["fjord.dev"],
            "resources": ["*"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        }
    ],
}


@dataclass(frozen=True)
class BootstrapInput:
    org: str
    environment: str
    cluster_id: str
    token: str
    public_key_pem: bytes
    # The legacy key's public half, trusted only during the signature migration window.
    legacy_public_key_pem: bytes | None = None


def _secret(name: str, data: dict[str, bytes], type_: str = "Opaque") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": flux.FLUX_NAMESPACE},
        "type": type_,
        "data": {k: base64.b64encode(v).decode() for k, v in sorted(data.items())},
    }


def _cosign_keys(given: BootstrapInput) -> dict[str, bytes]:
    # Flux tries every `.pub` key. The legacy key is listed only while fjord still writes legacy
    # `.sig` signatures: Flux never checks their digest claim, so a trusted legacy key would let
    # a copied `.sig` through; without it only digest-bound bundles verify.
    keys = {"cosign.pub": given.public_key_pem}
    if given.legacy_public_key_pem is not None:
        keys["legacy.pub"] = given.legacy_public_key_pem
    return keys


def _token_mark(token: str) -> str:
    return "token-" + hashlib.sha256(token.encode()).hexdigest()[:16]


def bootstrap_objects(settings: ControlSettings, given: BootstrapInput) -> list[Obj]:
    org, env = given.org, given.environment
    source = flux_source(settings, org, flux.sync_repository(org, env))
    objects: list[Obj] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": flux.FLUX_NAMESPACE}},
        INFRA_ROLE,
        _secret(flux.COSIGN_SECRET, _cosign_keys(given)),
        _secret(flux.WEBHOOK_SECRET, {"token": given.token.encode()}),
    ]
    if isinstance(source, BucketSource):
        # Read + list on the org's container only; the account key never leaves fjord.
        sas = read_sas(settings, org)
        objects.append(_secret(flux.AZURE_SECRET, {"sasKey": f"?{sas}".encode()}))
    elif source.needs_credentials:
        creds = settings.registry_credentials[source.registry]
        auth = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        config = {"auths": {source.registry: {"auth": auth}}}
        objects.append(
            _secret(
                flux.REGISTRY_SECRET,
                {".dockerconfigjson": json.dumps(config).encode()},
                "kubernetes.io/dockerconfigjson",
            )
        )
    meta = {"name": flux.SYNC_NAME, "namespace": flux.FLUX_NAMESPACE}
    objects += [
        flux.source_object(
            source, name=flux.SYNC_NAME, tag=flux.SYNC_TAG, interval=settings.flux_interval
        ),
        {
            "apiVersion": flux.KUSTOMIZE_API,
            "kind": "Kustomization",
            "metadata": meta,
            "spec": {
                "sourceRef": {"kind": flux.source_kind(source), "name": flux.SYNC_NAME},
                "path": flux.kustomization_path(source, flux.SYNC_TAG, ""),
                "prune": True,
                # The sync root is shared by the environment's clusters; this names the cluster,
                # for the per-cluster tags of rollouts in waves.
                "postBuild": {"substitute": {flux.CLUSTER_VAR: given.cluster_id.rsplit(".", 1)[1]}},
                "interval": settings.flux_interval,
                "timeout": settings.kustomization_timeout,
            },
        },
        {
            "apiVersion": flux.NOTIFICATION_API,
            "kind": "Provider",
            "metadata": {"name": flux.PROVIDER_NAME, "namespace": flux.FLUX_NAMESPACE},
            "spec": {
                "type": "generic-hmac",
                "address": f"{settings.public_url}/api/flux/events/{given.cluster_id}",
                "secretRef": {"name": flux.WEBHOOK_SECRET},
            },
        },
        {
            # flux-system's own sources and Kustomizations; app namespaces are listed by the
            # sync root's Alert (Flux Alerts have no namespace wildcard).
            "apiVersion": flux.NOTIFICATION_API,
            "kind": "Alert",
            "metadata": {"name": "fjord", "namespace": flux.FLUX_NAMESPACE},
            "spec": {
                "providerRef": {"name": flux.PROVIDER_NAME},
                "eventSeverity": "info",
                "eventSources": [
                    {"kind": "Kustomization", "name": "*"},
                    {"kind": flux.source_kind(source), "name": "*"},
                ],
            },
        },
        {
            "apiVersion": flux.RECEIVER_API,
            "kind": "Receiver",
            "metadata": {
                "name": flux.RECEIVER_NAME,
                "namespace": flux.FLUX_NAMESPACE,
                # Flux computes the webhook path from the token only when the Receiver
                # reconciles, and a changed Secret does not trigger that: a re-bootstrap with a
                # new token would answer 404 for up to the Receiver's interval. A request
                # annotation that changes with the token makes it reconcile at once.
                "annotations": {"reconcile.fluxcd.io/requestedAt": _token_mark(given.token)},
            },
            "spec": {
                "type": "generic-hmac",
                "secretRef": {"name": flux.WEBHOOK_SECRET},
                "resources": [
                    {
                        "apiVersion": flux.OCI_API,
                        "kind": flux.source_kind(source),
                        "name": flux.SYNC_NAME,
                    },
                    {
                        "apiVersion": flux.OCI_API,
                        "kind": flux.source_kind(source),
                        "name": "*",
                        "matchLabels": {flux.MANAGED_LABEL: "fjord"},
                    },
                ],
            },
        },
    ]
    return objects
