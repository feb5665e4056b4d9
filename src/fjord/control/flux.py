"""Names and API versions shared by the sync roots, the bootstrap and event ingest.

Where things live in a cluster (one org per cluster, so app names are unique in it):

* ``flux-system``: the root source + Kustomization ``fjord-sync``, one source per app
  (``{org}-{app}``), the cosign public key, registry or storage credentials and HMAC Secrets,
  the notification Provider, Alerts and Receiver. Secrets are created once by the bootstrap and
  are never in an artifact. Sources are OCIRepositories (cosign-verified) for OCI stores and
  Buckets for Azure Blob stores (one tree blob per tag, read with the org's SAS).
* ``{org}-{app}``: the app's Namespace, its deployer ServiceAccount + RoleBinding, and its
  Kustomization, which runs as that ServiceAccount and references the OCIRepository across
  namespaces; the app's own objects.
"""

from __future__ import annotations

from typing import Any

from fjord.control.stores import BucketSource, FluxSource
from fjord.render.podsecurity import DEPLOYER_SERVICE_ACCOUNT

OCI_API = "source.toolkit.fluxcd.io/v1"
KUSTOMIZE_API = "kustomize.toolkit.fluxcd.io/v1"
RECEIVER_API = "notification.toolkit.fluxcd.io/v1"
NOTIFICATION_API = "notification.toolkit.fluxcd.io/v1beta3"

FLUX_NAMESPACE = "flux-system"
SYNC_NAME = "fjord-sync"
SYNC_TAG = "current"
COSIGN_SECRET = "fjord-cosign"  # noqa: S105 (a Secret's name)
WEBHOOK_SECRET = "fjord-webhook"  # noqa: S105 (a Secret's name)
REGISTRY_SECRET = "fjord-registry"  # noqa: S105 (a Secret's name)
AZURE_SECRET = "fjord-azure"  # noqa: S105 (a Secret's name: the org's read-only SAS)
PROVIDER_NAME = "fjord"
RECEIVER_NAME = "fjord"
# The checks refuse workloads running as it; one name for both.
DEPLOYER = DEPLOYER_SERVICE_ACCOUNT
MANAGED_LABEL = "fjord.dev/managed-by"
ORG_LABEL = "fjord.dev/org"
APP_LABEL = "fjord.dev/app"
# Set by each cluster's root Kustomization (postBuild substitution) to the cluster's name, so one
# sync root per org+environment can point every cluster at a tag of its own.
CLUSTER_VAR = "fjord_cluster"


def app_namespace(org: str, app: str) -> str:
    return f"{org}-{app}"


def app_source_name(org: str, app: str) -> str:
    """The app's source (OCIRepository or Bucket) in flux-system."""
    return f"{org}-{app}"


def cluster_tag(environment: str, cluster: str) -> str:
    """The tag one cluster of an environment with a rollout strategy follows: moved when the
    cluster's wave starts, so clusters stay pull-only and move wave by wave."""
    return f"{environment}.{cluster}"


def app_tag(environment: str, *, per_cluster: bool) -> str:
    """The tag an app's OCIRepository follows, as written in the sync root."""
    return cluster_tag(environment, "${" + CLUSTER_VAR + "}") if per_cluster else environment


def sync_repository(org: str, environment: str) -> str:
    return f"{org}/sync/{environment}"


def oci_repository(
    source: FluxSource,
    *,
    name: str,
    tag: str,
    interval: str,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The cosign-verified OCIRepository in flux-system that follows ``tag`` of ``source``.

    The one shape for the sync root (bootstrap) and every app (sync root): the same
    verification, credentials and plain-HTTP handling for both.
    """
    spec: dict[str, Any] = {
        "url": source.url,
        "ref": {"tag": tag},
        "interval": interval,
        "verify": {"provider": "cosign", "secretRef": {"name": COSIGN_SECRET}},
    }
    if source.insecure:
        spec["insecure"] = True
    if source.needs_credentials:
        spec["secretRef"] = {"name": REGISTRY_SECRET}
    metadata: dict[str, Any] = {"name": name, "namespace": FLUX_NAMESPACE}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": OCI_API, "kind": "OCIRepository", "metadata": metadata, "spec": spec}


def bucket(
    source: BucketSource,
    *,
    name: str,
    tag: str,
    interval: str,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Bucket in flux-system that reads the tree of ``tag`` from the org's container.

    The one shape for the sync root and every app, read with the org's SAS. Flux does not
    verify Bucket contents; only the control plane holds a key that can write the container.
    """
    metadata: dict[str, Any] = {"name": name, "namespace": FLUX_NAMESPACE}
    if labels:
        metadata["labels"] = labels
    return {
        "apiVersion": OCI_API,
        "kind": "Bucket",
        "metadata": metadata,
        "spec": {
            "provider": "azure",
            "endpoint": source.endpoint,
            "bucketName": source.container,
            "prefix": source.prefix(tag),
            "interval": interval,
            "secretRef": {"name": AZURE_SECRET},
        },
    }


def source_object(
    source: FluxSource | BucketSource,
    *,
    name: str,
    tag: str,
    interval: str,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The source following ``tag``: an OCIRepository or a Bucket, by the org's store."""
    if isinstance(source, BucketSource):
        return bucket(source, name=name, tag=tag, interval=interval, labels=labels)
    return oci_repository(source, name=name, tag=tag, interval=interval, labels=labels)


def source_kind(source: FluxSource | BucketSource) -> str:
    return "Bucket" if isinstance(source, BucketSource) else "OCIRepository"


def kustomization_path(source: FluxSource | BucketSource, tag: str, directory: str) -> str:
    """Where a Kustomization finds ``directory`` of the artifact behind ``tag``: the directory
    itself in an OCI artifact; the tag's tree (that directory, as one blob) in a Bucket."""
    if isinstance(source, BucketSource):
        return source.path(tag)
    return f"./{directory}" if directory else "./"


# Source kinds fjord creates; events from them are about the app (or the root) they follow.
SOURCE_KINDS = ("OCIRepository", "Bucket")
