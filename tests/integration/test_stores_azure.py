"""The Azure Blob store's Flux Bucket tree and create-only blobs, against Azurite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from azure.storage.blob.aio import ContainerClient

from fjord.artifact import build_artifact
from fjord.devcluster.azurite import Azurite
from fjord.stores import AzureBlobStore, BlobOutcome
from fjord.stores.azure import DEFAULT_API_VERSION

REPO = "ttd/apps/app1"


@pytest.fixture
async def container(azurite: Azurite) -> AsyncIterator[ContainerClient]:
    client = ContainerClient.from_connection_string(
        azurite.connection_string, f"c{uuid.uuid4().hex[:12]}", api_version=DEFAULT_API_VERSION
    )
    async with client:
        yield client


@pytest.fixture
async def store(azurite: Azurite, container: ContainerClient) -> AsyncIterator[AzureBlobStore]:
    async with AzureBlobStore.from_connection_string(
        azurite.connection_string, container.container_name
    ) as result:
        yield result


async def etags(container: ContainerClient, prefix: str) -> dict[str, str]:
    return {b.name: b.etag async for b in container.list_blobs(name_starts_with=prefix)}


async def read(container: ContainerClient, key: str) -> bytes:
    return bytes(await (await container.download_blob(key)).readall())


async def test_environment_tags_write_a_bucket_tree(
    store: AzureBlobStore, container: ContainerClient
) -> None:
    v1 = build_artifact(
        {
            "tt02/app1.yaml": b"a: 1\n",
            "tt02/infra/mp.yaml": b"m: 1\n",
            "production/app1.yaml": b"p\n",
        },
        source="s",
        revision="v1",
    )
    await store.push(REPO, v1, tag="tt02")
    await store.tag(REPO, v1.digest, "production")
    prefix = AzureBlobStore.tree_prefix(REPO)
    assert prefix == "tree/ttd/apps/app1/"
    keys = await etags(container, prefix)
    assert sorted(keys) == [
        "tree/ttd/apps/app1/production/app1.yaml",
        "tree/ttd/apps/app1/tt02/app1.yaml",
        "tree/ttd/apps/app1/tt02/infra/mp.yaml",
    ]
    assert await read(container, "tree/ttd/apps/app1/tt02/app1.yaml") == b"a: 1\n"
    oci_keys = [b.name async for b in container.list_blobs(name_starts_with="oci/ttd/apps/app1/")]
    assert f"oci/{REPO}/tags/tt02" in oci_keys
    assert f"oci/{REPO}/manifests/sha256/{v1.digest.removeprefix('sha256:')}" in oci_keys

    # v2 changes one tt02 file and drops another; production's tag does not move.
    v2 = build_artifact(
        {"tt02/app1.yaml": b"a: 2\n", "production/app1.yaml": b"p\n"}, source="s", revision="v2"
    )
    await store.push(REPO, v2, tag="tt02")
    after = await etags(container, prefix)
    assert sorted(after) == [
        "tree/ttd/apps/app1/production/app1.yaml",
        "tree/ttd/apps/app1/tt02/app1.yaml",
    ]
    assert (
        after["tree/ttd/apps/app1/production/app1.yaml"]
        == (keys["tree/ttd/apps/app1/production/app1.yaml"])
    )
    assert await read(container, "tree/ttd/apps/app1/tt02/app1.yaml") == b"a: 2\n"

    # A no-op re-tag rewrites nothing, so a Flux Bucket revision (keys + etags) stays put.
    await store.push(REPO, v2, tag="tt02")
    assert await etags(container, prefix) == after

    assert await store.delete_tag(REPO, "tt02")
    assert sorted(await etags(container, prefix)) == ["tree/ttd/apps/app1/production/app1.yaml"]


async def test_non_environment_tags_get_no_tree(
    store: AzureBlobStore, container: ContainerClient
) -> None:
    artifact = build_artifact({"tt02/app1.yaml": b"a\n"}, source="s", revision="r")
    await store.push(REPO, artifact, tag="latest")
    assert await etags(container, "tree/") == {}
    assert await store.resolve(REPO, "latest") == artifact.digest


async def test_blobs_are_create_only(store: AzureBlobStore, container: ContainerClient) -> None:
    data = uuid.uuid4().bytes
    assert await store.put_blob(REPO, data) == BlobOutcome.UPLOADED
    key = next(iter(await etags(container, f"oci/{REPO}/blobs/")))
    before = await etags(container, key)
    assert await store.put_blob(REPO, data) == BlobOutcome.EXISTS
    assert await etags(container, key) == before
