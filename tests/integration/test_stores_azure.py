"""The Azure Blob store's Flux Bucket tree and create-only blobs, against Azurite."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
import yaml
from azure.core.exceptions import ResourceNotFoundError
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
            "tt02/infra/mp.yaml": b"---\nm: 1\n",
            "production/app1.yaml": b"p: 1\n",
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
        "tree/ttd/apps/app1/production/manifests.yaml",
        "tree/ttd/apps/app1/tt02/manifests.yaml",
    ]
    # The environment's files, in path order, as one multi-document YAML.
    tt02 = await read(container, "tree/ttd/apps/app1/tt02/manifests.yaml")
    assert tt02 == b"---\na: 1\n---\nm: 1\n"
    assert list(yaml.safe_load_all(tt02)) == [{"a": 1}, {"m": 1}]
    oci_keys = [b.name async for b in container.list_blobs(name_starts_with="oci/ttd/apps/app1/")]
    assert f"oci/{REPO}/tags/tt02" in oci_keys
    assert f"oci/{REPO}/manifests/sha256/{v1.digest.removeprefix('sha256:')}" in oci_keys
    state = await store.tree_state(REPO, "tt02")
    assert state is not None
    assert state.digest == v1.digest

    # v2 changes tt02; production's tag does not move.
    v2 = build_artifact(
        {"tt02/app1.yaml": b"a: 2\n", "production/app1.yaml": b"p: 1\n"},
        source="s",
        revision="v2",
    )
    await store.push(REPO, v2, tag="tt02")
    after = await etags(container, prefix)
    assert (
        after["tree/ttd/apps/app1/production/manifests.yaml"]
        == (keys["tree/ttd/apps/app1/production/manifests.yaml"])
    )
    assert await read(container, "tree/ttd/apps/app1/tt02/manifests.yaml") == b"---\na: 2\n"
    moved = await store.tree_state(REPO, "tt02")
    assert moved is not None
    assert moved.digest == v2.digest
    assert moved.revision != state.revision

    # A no-op re-tag rewrites nothing, so a Flux Bucket revision (keys + etags) stays put.
    await store.push(REPO, v2, tag="tt02")
    assert await etags(container, prefix) == after
    assert await store.tree_state(REPO, "tt02") == moved

    assert await store.delete_tag(REPO, "tt02")
    assert sorted(await etags(container, prefix)) == [
        "tree/ttd/apps/app1/production/manifests.yaml"
    ]
    assert await store.tree_state(REPO, "tt02") is None


async def test_a_reader_never_sees_two_releases_mixed(
    store: AzureBlobStore, container: ContainerClient
) -> None:
    """A reader listing and downloading the tree like Flux's Bucket source does, while the tag
    flips between two releases that differ in every file, sees exactly one of them each time."""
    names = [f"tt02/part{i}.yaml" for i in range(6)]
    releases = [
        build_artifact({n: f"release: {v}\n".encode() for n in names}, source="s", revision=v)
        for v in ("one", "two")
    ]
    for artifact in releases:
        await store.push(REPO, artifact)
    await store.tag(REPO, releases[0].digest, "tt02")
    prefix = AzureBlobStore.tree_prefix(REPO, "tt02")
    switching = True
    seen: list[set[object]] = []

    async def reader() -> None:
        while switching or not seen:
            keys = [b.name async for b in container.list_blobs(name_starts_with=prefix)]
            values: set[object] = set()
            for key in keys:
                with contextlib.suppress(ResourceNotFoundError):
                    for doc in yaml.safe_load_all(await read(container, key)):
                        values.add(doc["release"])
            seen.append(values)
            await asyncio.sleep(0)

    task = asyncio.create_task(reader())
    for round_ in range(20):
        await store.tag(REPO, releases[(round_ + 1) % 2].digest, "tt02")
        await asyncio.sleep(0)
    switching = False
    await task
    assert seen
    assert all(values in ({"one"}, {"two"}) for values in seen), seen


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
