"""Real Flux on the local cluster pulls an artifact the test pushed, applies it, and prunes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml

from fjord.artifact.oci import build_artifact
from fjord.devcluster.cluster import ClusterState
from fjord.devcluster.registry import LocalRegistry
from fjord.kube import Kube, condition, has_artifact, is_true
from fjord.stores.registry import RegistryStore

pytestmark = [pytest.mark.cluster, pytest.mark.flux]


def configmap(name: str, namespace: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"value": value},
    }


async def push(
    registry: LocalRegistry, repository: str, tag: str, objects: list[dict[str, Any]]
) -> str:
    files = {f"deploy/{o['metadata']['name']}.yaml": yaml.safe_dump(o).encode() for o in objects}
    artifact = build_artifact(files, source="https://example.test/app", revision=f"{tag}@sha1:0")
    async with RegistryStore(registry.url) as store:
        return await store.push(repository, artifact, tag=tag)


def request_reconcile() -> dict[str, Any]:
    # What `flux reconcile` does: a new value makes the controller reconcile at once.
    now = dt.datetime.now(dt.UTC).isoformat()
    return {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": now}}}


async def test_oci_repository_pulls_and_kustomization_applies_and_prunes(
    flux_kube: Kube, flux_namespace: str, flux_cluster: ClusterState, registry: LocalRegistry
) -> None:
    ns = flux_namespace
    repository = f"flux-test/{ns}"
    digest = await push(
        registry, repository, "v1", [configmap("keep", ns, "1"), configmap("drop", ns, "1")]
    )
    await flux_kube.apply(
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "OCIRepository",
            "metadata": {"name": "app", "namespace": ns},
            "spec": {
                "url": f"oci://{registry.host}/{repository}",
                "ref": {"tag": "v1"},
                "interval": "10m",
                "insecure": True,
            },
        },
        field_manager="test",
    )
    source = await flux_kube.wait_for(
        "source.toolkit.fluxcd.io/v1",
        "OCIRepository",
        "app",
        ns,
        until=has_artifact,
        what="Ready",
    )
    assert source is not None
    assert source["status"]["artifact"]["revision"] == f"v1@{digest}"
    # The artifact is served by source-controller on loopback, where kustomize-controller gets it.
    assert source["status"]["artifact"]["url"].startswith(flux_cluster.flux_storage_url)

    await flux_kube.apply(
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "app", "namespace": ns},
            "spec": {
                "sourceRef": {"kind": "OCIRepository", "name": "app"},
                "path": "./deploy",
                "prune": True,
                "interval": "10m",
                "timeout": "1m",
            },
        },
        field_manager="test",
    )
    applied = await flux_kube.wait_for(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        "app",
        ns,
        until=lambda o: is_true(o, "Ready"),
        what="Ready",
    )
    assert applied is not None
    assert applied["status"]["lastAppliedRevision"] == f"v1@{digest}"
    assert await flux_kube.get("v1", "ConfigMap", "keep", ns) is not None
    assert await flux_kube.get("v1", "ConfigMap", "drop", ns) is not None

    # The next artifact drops one object and changes the other; moving the tag and asking for a
    # reconcile makes Flux pull it, apply the change and prune the dropped object.
    digest2 = await push(registry, repository, "v1", [configmap("keep", ns, "2")])
    assert digest2 != digest
    await flux_kube.patch(
        "source.toolkit.fluxcd.io/v1", "OCIRepository", "app", request_reconcile(), ns
    )
    await flux_kube.wait_for(
        "kustomize.toolkit.fluxcd.io/v1",
        "Kustomization",
        "app",
        ns,
        until=lambda o: (
            (o or {}).get("status", {}).get("lastAppliedRevision") == f"v1@{digest2}"
            and is_true(o, "Ready")
        ),
        what=f"applied at v1@{digest2}",
    )
    kept = await flux_kube.get("v1", "ConfigMap", "keep", ns)
    assert kept is not None
    assert kept["data"] == {"value": "2"}
    assert await flux_kube.get("v1", "ConfigMap", "drop", ns) is None


async def test_a_missing_tag_is_reported_in_the_condition(
    flux_kube: Kube, flux_namespace: str, registry: LocalRegistry
) -> None:
    await flux_kube.apply(
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "OCIRepository",
            "metadata": {"name": "missing", "namespace": flux_namespace},
            "spec": {
                "url": f"oci://{registry.host}/flux-test/does-not-exist",
                "ref": {"tag": "v9"},
                "interval": "10m",
                "insecure": True,
            },
        },
        field_manager="test",
    )
    failed = await flux_kube.wait_for(
        "source.toolkit.fluxcd.io/v1",
        "OCIRepository",
        "missing",
        flux_namespace,
        until=lambda o: (condition(o, "Ready") or {}).get("status") == "False",
        what="not Ready",
    )
    ready = condition(failed, "Ready") or {}
    assert ready["reason"] == "OCIArtifactPullFailed"
    assert "v9" in ready["message"] or "does-not-exist" in ready["message"]
