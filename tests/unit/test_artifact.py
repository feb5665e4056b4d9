"""Deterministic packing and the Flux OCI artifact layout."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import subprocess
import sys
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fjord.artifact import (
    FLUX_CONFIG,
    FLUX_CONTENT,
    OCI_MANIFEST,
    Artifact,
    ArtifactError,
    DigestMismatchError,
    build_artifact,
    sha256_digest,
)
from fjord.artifact.tarball import pack, unpack

GOLDEN_FILES = {
    "tt02/app1.yaml": b"apiVersion: v1\nkind: ConfigMap\n",
    "production/app1.yaml": b"kind: ConfigMap\n",
    "tt02/infra/maskinporten.yaml": "æøå: ✓\n".encode(),
}
GOLDEN_REVISION = "main@sha1:0123456789abcdef0123456789abcdef01234567"
# Pinned: a change here means every release digest changes (a format change, or a zlib build
# that compresses differently; see fjord.artifact.tarball).
GOLDEN_DIGEST = "sha256:acea66bfb943e73935f973e0e3ed2c806f3a4df0a96bd67315f8fb77cae941b4"
GOLDEN_LAYER = "sha256:9d7d82dbe117804e80e7a0536227c3e1f9f81c43c75d61474a1d02ee2d2cb4f6"


def golden() -> Artifact:
    return build_artifact(
        GOLDEN_FILES, source="https://git.example/ttd/app1", revision=GOLDEN_REVISION
    )


def test_golden_digest_is_stable() -> None:
    artifact = golden()
    assert sha256_digest(artifact.layer) == GOLDEN_LAYER
    assert artifact.digest == GOLDEN_DIGEST


def test_same_digest_in_a_fresh_interpreter() -> None:
    # Hash seeds, dict order and module state differ per process; the digest must not.
    code = (
        "from fjord.artifact import build_artifact;"
        f"print(build_artifact({GOLDEN_FILES!r}, source='https://git.example/ttd/app1',"
        f" revision={GOLDEN_REVISION!r}).digest)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == GOLDEN_DIGEST


def test_manifest_follows_flux_push_artifact() -> None:
    artifact = golden()
    manifest = json.loads(artifact.manifest)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["config"]["mediaType"] == FLUX_CONFIG
    assert [layer["mediaType"] for layer in manifest["layers"]] == [FLUX_CONTENT]
    assert manifest["layers"][0] == {
        "mediaType": FLUX_CONTENT,
        "digest": sha256_digest(artifact.layer),
        "size": len(artifact.layer),
    }
    assert manifest["annotations"] == {
        "org.opencontainers.image.created": "1970-01-01T00:00:00Z",
        "org.opencontainers.image.source": "https://git.example/ttd/app1",
        "org.opencontainers.image.revision": GOLDEN_REVISION,
    }
    assert "artifactType" not in manifest
    assert "subject" not in manifest
    # Canonical JSON: compact with sorted keys, so re-encoding gives the same bytes.
    assert artifact.manifest == json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    config = json.loads(artifact.config)
    tar = gzip.decompress(artifact.layer)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha256_digest(tar)]}
    assert config["created"] == "1970-01-01T00:00:00Z"


def test_created_and_extra_annotations() -> None:
    created = dt.datetime(
        2026, 11, 21, 9, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1))
    )
    artifact = build_artifact(
        GOLDEN_FILES, source="s", revision="r", created=created, annotations={"fjord.dev/app": "a"}
    )
    assert artifact.annotations["org.opencontainers.image.created"] == "2026-11-21T08:30:15Z"
    assert artifact.annotations["fjord.dev/app"] == "a"
    assert artifact.revision == "r"
    with pytest.raises(ArtifactError):
        build_artifact(
            GOLDEN_FILES,
            source="s",
            revision="r",
            annotations={"org.opencontainers.image.revision": "x"},
        )
    with pytest.raises(ArtifactError):
        build_artifact(GOLDEN_FILES, source="s", revision="r", created=dt.datetime(2026, 1, 1))


def test_tar_layout_matches_flux() -> None:
    with tarfile.open(fileobj=io.BytesIO(golden().layer), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [
        ".",
        "production",
        "production/app1.yaml",
        "tt02",
        "tt02/app1.yaml",
        "tt02/infra",
        "tt02/infra/maskinporten.yaml",
    ]
    for member in members:
        assert member.isdir() or member.isfile()
        assert not member.issym()
        assert not member.islnk()
        assert (member.uid, member.gid, member.uname, member.gname, member.mtime) == (
            0,
            0,
            "",
            "",
            0,
        )
        assert member.mode == (0o755 if member.isdir() else 0o644)


def test_gzip_header_carries_no_time_name_or_host() -> None:
    layer = golden().layer
    assert layer[:4] == b"\x1f\x8b\x08\x00"  # deflate, no FNAME/FCOMMENT/FEXTRA flags
    assert layer[4:8] == b"\x00\x00\x00\x00"  # MTIME 0
    assert layer[9] == 0xFF  # OS unknown


def test_walk_order_puts_children_right_after_their_directory() -> None:
    _, tar = pack({"a-b/x": b"1", "a/b": b"2", "a.c": b"3"})
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        assert archive.getnames() == [".", "a", "a/b", "a-b", "a-b/x", "a.c"]


@pytest.mark.parametrize(
    "path", ["", "/abs.yaml", "../up.yaml", "a/../b", "a//b", "./a", "a\\b", "a/", "a/./b"]
)
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(ArtifactError):
        build_artifact({path: b"x"}, source="s", revision="r")


def test_file_and_directory_with_one_name_are_refused() -> None:
    with pytest.raises(ArtifactError):
        build_artifact({"a": b"1", "a/b": b"2"}, source="s", revision="r")


def test_artifact_validates_its_parts() -> None:
    artifact = golden()
    with pytest.raises(DigestMismatchError):
        Artifact(manifest=artifact.manifest, config=artifact.config, layer=artifact.layer + b"x")
    with pytest.raises(ArtifactError):
        Artifact(manifest=b"not json", config=artifact.config, layer=artifact.layer)


def test_unpack_refuses_links() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        link = tarfile.TarInfo("tt02/link.yaml")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(ArtifactError, match="not a regular file"):
        unpack(buffer.getvalue())


segment = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=8
).filter(lambda s: s not in (".", ".."))
paths = st.lists(segment, min_size=1, max_size=3).map("/".join)
file_maps = st.dictionaries(paths, st.binary(max_size=64), min_size=1, max_size=8).filter(
    lambda files: (
        not any(other.startswith(path + "/") for path in files for other in files if other != path)
    )
)


@settings(max_examples=60, deadline=None)
@given(files=file_maps, data=st.data())
def test_digest_depends_on_content_not_input_order(
    files: dict[str, bytes], data: st.DataObject
) -> None:
    digest = build_artifact(files, source="s", revision="r").digest
    shuffled = data.draw(st.permutations(list(files.items())))
    assert build_artifact(dict(shuffled), source="s", revision="r").digest == digest
    assert build_artifact(files, source="s", revision="r").files() == files

    # Any change to any file's content gives a different digest.
    target = data.draw(st.sampled_from(sorted(files)))
    changed = dict(files)
    changed[target] = files[target] + data.draw(st.binary(min_size=1, max_size=8))
    assert build_artifact(changed, source="s", revision="r").digest != digest
