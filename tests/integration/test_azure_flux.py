"""Flux's Bucket source reads a release fjord published to Azure Blob Storage (Azurite)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from fjord.devcluster.azurite import ACCOUNT_KEY, ACCOUNT_NAME, Azurite
from fjord.kube import Kube, condition, is_true
from fjord.releases import build_release, publish
from fjord.spec import default_platform
from fjord.spec.platform import IngressRouting
from fjord.stores.azure import AzureBlobStore

pytestmark = [pytest.mark.cluster, pytest.mark.flux]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "platform-app"
CONTAINER = "fjord-flux"


async def test_bucket_source_applies_the_environment_tree(
    flux_kube: Kube, flux_namespace: str, azurite: Azurite
) -> None:
    ns = flux_namespace
    platform = default_platform().model_copy(update={"routing": IngressRouting(flavour="ingress")})
    release = build_release(EXAMPLE, source="s", revision="main@sha1:1", platform=platform)
    async with AzureBlobStore.from_connection_string(azurite.connection_string, CONTAINER) as store:
        await publish(store, release, tags=["tt02"])
    sas = generate_container_sas(
        ACCOUNT_NAME,
        CONTAINER,
        account_key=ACCOUNT_KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )
    await flux_kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "azure-sas", "namespace": ns},
            "stringData": {"sasKey": f"?{sas}"},
        },
        field_manager="test",
    )
    prefix = AzureBlobStore.tree_prefix(release.repository)
    await flux_kube.apply(
        {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "Bucket",
            "metadata": {"name": "skjema", "namespace": ns},
            "spec": {
                "provider": "azure",
                "bucketName": CONTAINER,
                "endpoint": azurite.blob_endpoint,
                "prefix": prefix,
                "interval": "10m",
                "secretRef": {"name": "azure-sas"},
            },
        },
        field_manager="test",
    )
    bucket = await flux_kube.wait_for(
        "source.toolkit.fluxcd.io/v1",
        "Bucket",
        "skjema",
        ns,
        until=lambda o: (condition(o, "Ready") or {}).get("status") in ("True", "False"),
    )
    assert is_true(bucket, "Ready"), condition(bucket, "Ready")

    await flux_kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ttd-skjema"}},
        field_manager="test",
    )
    for crd in sorted((EXAMPLE.parents[1] / "deploy" / "crds").glob("*.yaml")):
        await flux_kube.apply(yaml.safe_load(crd.read_text()), field_manager="test", force=True)
    try:
        await flux_kube.apply(
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": "skjema-azure", "namespace": ns},
                "spec": {
                    "sourceRef": {"kind": "Bucket", "name": "skjema"},
                    "path": f"./{prefix}tt02",
                    "prune": True,
                    "interval": "10m",
                },
            },
            field_manager="test",
        )
        applied = await flux_kube.wait_for(
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            "skjema-azure",
            ns,
            until=lambda o: (condition(o, "Ready") or {}).get("status") in ("True", "False"),
        )
        assert is_true(applied, "Ready"), condition(applied, "Ready")
        deployment = await flux_kube.get("apps/v1", "Deployment", "skjema", "ttd-skjema")
        assert deployment is not None
    finally:
        await flux_kube.delete(
            "kustomize.toolkit.fluxcd.io/v1", "Kustomization", "skjema-azure", ns
        )
        await flux_kube.delete("v1", "Namespace", "ttd-skjema")
        await flux_kube.wait_for(
            "v1", "Namespace", "ttd-skjema", until=lambda o: o is None, timeout=120
        )
