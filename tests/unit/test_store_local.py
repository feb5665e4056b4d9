"""The local OCI-layout store: layout on disk, atomic writes, and crash safety."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from fjord.artifact import DigestMismatchError, Image, build_artifact
from fjord.stores import BlobOutcome, LocalStore, NotFoundError, StoreError

REPO = "ttd/apps/app1"
FILES = {"tt02/app1.yaml": b"kind: ConfigMap\n"}


def artifact(revision: str = "r", files: dict[str, bytes] = FILES) -> Image:
    return build_artifact(files, source="s", revision=revision).image


async def test_layout_is_an_oci_image_layout(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    image = artifact()
    await store.push(REPO, image, tag="tt02")
    repo = tmp_path / REPO
    assert json.loads((repo / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((repo / "index.json").read_text())
    assert index["schemaVersion"] == 2
    assert index["manifests"] == [
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": image.digest,
            "size": len(image.manifest),
            "annotations": {"org.opencontainers.image.ref.name": "tt02"},
        }
    ]
    blobs = {p.name for p in (repo / "blobs" / "sha256").iterdir()}
    expected = {d.removeprefix("sha256:") for d in [image.digest, *image.blobs]}
    assert blobs == expected


async def test_crash_before_rename_leaves_no_visible_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path)
    data = b"layer bytes"

    def crash(src: str, dst: str) -> None:
        raise OSError("simulated crash between write and rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        await store.put_blob(REPO, data)
    monkeypatch.undo()
    digest = Image(manifest=data).digest
    assert not await store.blob_exists(REPO, digest)
    blob_dir = tmp_path / REPO / "blobs" / "sha256"
    assert not blob_dir.exists() or list(blob_dir.iterdir()) == []
    assert await store.put_blob(REPO, data) == BlobOutcome.UPLOADED
    assert await store.get_blob(REPO, digest) == data


async def test_crash_while_moving_a_tag_keeps_the_old_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path)
    old, new = artifact("old"), artifact("new", {"tt02/app1.yaml": b"kind: New\n"})
    await store.push(REPO, old, tag="tt02")
    await store.push(REPO, new)
    index_before = (tmp_path / REPO / "index.json").read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("simulated crash")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        await store.tag(REPO, new.digest, "tt02")
    monkeypatch.undo()
    assert (tmp_path / REPO / "index.json").read_bytes() == index_before
    assert await store.resolve(REPO, "tt02") == old.digest
    assert not [p for p in (tmp_path / REPO).iterdir() if p.name.startswith(".tmp-")]


async def test_stray_temp_files_from_a_killed_writer_are_ignored(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    image = artifact()
    await store.push(REPO, image, tag="tt02")
    blob_dir = tmp_path / REPO / "blobs" / "sha256"
    (blob_dir / ".tmp-abandoned").write_bytes(b"half a blo")
    (tmp_path / REPO / ".tmp-index").write_bytes(b'{"manifests": [')
    assert await store.list_tags(REPO) == ["tt02"]
    assert (await store.pull(REPO, "tt02")).digest == image.digest


async def test_tag_refuses_when_a_blob_is_missing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    old, new = artifact("old"), artifact("new", {"tt02/app1.yaml": b"kind: New\n"})
    await store.push(REPO, old, tag="tt02")
    await store.push(REPO, new)
    layer = new.document["layers"][0]["digest"]
    os.unlink(tmp_path / REPO / "blobs" / "sha256" / layer.removeprefix("sha256:"))
    with pytest.raises(NotFoundError, match="missing blob"):
        await store.tag(REPO, new.digest, "tt02")
    assert await store.resolve(REPO, "tt02") == old.digest


async def test_tampered_blob_on_disk_is_detected(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    image = artifact()
    await store.push(REPO, image, tag="tt02")
    layer = image.document["layers"][0]["digest"]
    (tmp_path / REPO / "blobs" / "sha256" / layer.removeprefix("sha256:")).write_bytes(b"evil")
    with pytest.raises(DigestMismatchError, match=f"local store {tmp_path}, repository {REPO}"):
        await store.pull(REPO, "tt02")


async def test_concurrent_tag_moves_keep_the_index_whole(tmp_path: Path) -> None:
    images = [artifact(str(i), {f"tt02/f{i}.yaml": b"x"}) for i in range(8)]
    store = LocalStore(tmp_path)
    for image in images:
        await store.push(REPO, image)
    # Several stores (as several processes would) moving different tags at once: the flock
    # serialises the read-modify-write of index.json, so no update is lost.
    await asyncio.gather(
        *(LocalStore(tmp_path).tag(REPO, image.digest, f"env{i}") for i, image in enumerate(images))
    )
    assert await store.list_tags(REPO) == [f"env{i}" for i in range(8)]
    for i, image in enumerate(images):
        assert await store.resolve(REPO, f"env{i}") == image.digest


async def test_mount_hard_links_from_another_repository(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    image = artifact()
    await store.push(REPO, image)
    layer = image.document["layers"][0]["digest"]
    data = image.blobs[layer]
    assert await store.put_blob("ttd/apps/app2", data, mount_from=[REPO]) == BlobOutcome.MOUNTED
    hex_digest = layer.removeprefix("sha256:")
    source = tmp_path / REPO / "blobs" / "sha256" / hex_digest
    target = tmp_path / "ttd/apps/app2" / "blobs" / "sha256" / hex_digest
    assert source.stat().st_ino == target.stat().st_ino


async def test_names_are_validated(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for bad in ["../escape", "Upper/case", "a//b", "/abs", "ttd/blobs/x"]:
        with pytest.raises(StoreError):
            await store.push(bad, artifact())
    with pytest.raises(StoreError):
        await store.push(REPO, artifact(), tag="bad/tag")


async def test_several_tags_move_in_one_call(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    old, new = artifact("old"), artifact("new", {"tt02/new.yaml": b"kind: New\n"})
    await store.push(REPO, old, tag="cluster-a")
    await store.push(REPO, new)
    await store.tag(REPO, new.digest, "cluster-a", "cluster-b", manifest=new.manifest)
    assert await store.resolve(REPO, "cluster-a") == new.digest
    assert await store.resolve(REPO, "cluster-b") == new.digest


@pytest.mark.parametrize("given", [False, True], ids=["read-back", "manifest-given"])
async def test_a_missing_blob_moves_none_of_the_tags(tmp_path: Path, given: bool) -> None:
    store = LocalStore(tmp_path)
    old, new = artifact("old"), artifact("new", {"tt02/new.yaml": b"kind: New\n"})
    await store.push(REPO, old, tag="cluster-a")
    await store.push(REPO, new)
    layer = new.document["layers"][0]["digest"]
    (tmp_path / REPO / "blobs" / "sha256" / layer.removeprefix("sha256:")).unlink()
    with pytest.raises(NotFoundError, match=f"cluster-a,cluster-b.*missing blob {layer}"):
        await store.tag(
            REPO, new.digest, "cluster-a", "cluster-b", manifest=new.manifest if given else None
        )
    assert await store.resolve(REPO, "cluster-a") == old.digest
    assert await store.resolve(REPO, "cluster-b") is None


async def test_a_given_manifest_must_match_the_digest(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    old, new = artifact("old"), artifact("new", {"tt02/new.yaml": b"kind: New\n"})
    await store.push(REPO, old, tag="tt02")
    await store.push(REPO, new)
    with pytest.raises(DigestMismatchError):
        await store.tag(REPO, new.digest, "tt02", manifest=old.manifest)
    assert await store.resolve(REPO, "tt02") == old.digest
