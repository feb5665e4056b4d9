"""Container images built on this machine, without any registry download.

Images are OCI image manifests over deterministic gzip layers (the same writer as fjord's Flux
artifacts), so the same inputs give the same digest. They reach a node either as an OCI archive
imported into containerd (the sandbox "pause" image, which must be local) or pushed to an org's
registry with fjord's own registry client (the sample apps, pulled like in production).

Built parts are cached under ``$FJORD_CACHE_DIR/images/<name>-<hash of the recipe>/``, like the
Go-built binaries: a changed recipe builds into a new directory, an unchanged one is reused.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fjord.artifact.digest import canonical_json, sha256_digest
from fjord.artifact.oci import OCI_CONFIG, Image, image_manifest

__all__ = ["Entry", "Image", "ImageConfig", "Layer", "build_image", "layer", "oci_archive"]
from fjord.artifact.tarball import gzip_deterministic
from fjord.devcluster.binaries import cache_root
from fjord.errors import FjordError

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
PAUSE_SOURCE = Path(__file__).with_name("pause") / "pause.c"
NOBODY = 65534  # the user images run as: never root (Pod Security "restricted")


class ImageBuildError(FjordError):
    pass


@dataclass(frozen=True)
class Entry:
    """One tar entry of a layer: a file (``content``), a directory or a symlink (``link``)."""

    path: str
    content: bytes | None = None
    mode: int = 0o644
    link: str | None = None
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Layer:
    """A gzip layer and the digest of its uncompressed tar (the config's ``diff_id``)."""

    blob: bytes
    diff_id: str

    @classmethod
    def from_tar(cls, tar: bytes) -> Layer:
        """Compress ``tar``; a tar compressed before is read back (zlib level 9 is slow)."""
        diff_id = sha256_digest(tar)
        cached = cache_root() / "images" / "layers" / f"{diff_id.split(':')[1]}.tar.gz"
        if cached.is_file():
            return cls(cached.read_bytes(), diff_id)
        blob = gzip_deterministic(tar)
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.name}.{os.getpid()}")
        partial.write_bytes(blob)
        partial.rename(cached)
        return cls(blob, diff_id)


def _with_parents(entries: Iterable[Entry]) -> list[Entry]:
    by_path = {entry.path.strip("/"): entry for entry in entries}
    for path in list(by_path):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            by_path.setdefault(parent, Entry(parent, mode=0o755))
    return sorted(by_path.values(), key=lambda e: tuple(e.path.strip("/").split("/")))


def layer(entries: Iterable[Entry]) -> Layer:
    """A deterministic layer: every parent directory, sorted, headers normalised (mtime 0)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in _with_parents(entries):
            info = tarfile.TarInfo(entry.path.strip("/"))
            info.uid, info.gid, info.uname, info.gname, info.mtime = entry.uid, entry.gid, "", "", 0
            info.mode = entry.mode
            if entry.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
                tar.addfile(info)
            elif entry.content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(entry.content)
                tar.addfile(info, io.BytesIO(entry.content))
    return Layer.from_tar(buffer.getvalue())


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an OCI image config fjord sets."""

    entrypoint: tuple[str, ...]
    user: str = f"{NOBODY}:{NOBODY}"
    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    workdir: str = "/"
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[int, ...] = ()


def build_image(layers: list[Layer], config: ImageConfig) -> Image:
    """The image manifest and blobs over ``layers`` (lowest first)."""
    document: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": list(config.entrypoint),
            "User": config.user,
            "Env": list(config.env),
            "WorkingDir": config.workdir,
        },
        "rootfs": {"type": "layers", "diff_ids": [lay.diff_id for lay in layers]},
        "created": "1970-01-01T00:00:00Z",
    }
    if config.labels:
        document["config"]["Labels"] = dict(config.labels)
    if config.ports:
        document["config"]["ExposedPorts"] = {f"{p}/tcp": {} for p in config.ports}
    config_blob = canonical_json(document)
    manifest = image_manifest(
        OCI_CONFIG, config_blob, [(OCI_LAYER, lay.blob, {}) for lay in layers]
    )
    blobs = {sha256_digest(config_blob): config_blob}
    blobs.update({sha256_digest(lay.blob): lay.blob for lay in layers})
    return Image(manifest=manifest, blobs=blobs)


def oci_archive(image: Image, name: str) -> bytes:
    """An OCI image layout as one tar, named ``name``: what ``ctr images import`` reads."""
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": image.media_type,
                "digest": image.digest,
                "size": len(image.manifest),
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
                },
            }
        ],
    }
    files = {
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        "index.json": canonical_json(index),
        f"blobs/sha256/{image.digest.split(':')[1]}": image.manifest,
        **{f"blobs/sha256/{d.split(':')[1]}": data for d, data in image.blobs.items()},
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(path)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# ---- the sandbox image ----------------------------------------------------------------------


def _recipe_hash(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:12]


def _compiler_version(cc: str) -> bytes:
    return subprocess.run([cc, "--version"], capture_output=True, check=True).stdout


def pause_binary() -> Path:
    """The static sandbox binary, compiled once per source and compiler version."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise ImageBuildError(
            "no C compiler to build the Pod sandbox (pause) binary",
            "install Debian's gcc and libc6-dev (scripts/setup does)",
        )
    source = PAUSE_SOURCE.read_bytes()
    directory = cache_root() / "images" / f"pause-{_recipe_hash(source, _compiler_version(cc))}"
    binary = directory / "pause"
    if binary.is_file():
        return binary
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / "pause.partial"
    built = subprocess.run(
        [cc, "-Os", "-static", "-s", "-o", str(partial), str(PAUSE_SOURCE)],
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0:
        raise ImageBuildError(
            f"compiling {PAUSE_SOURCE} failed: {built.stderr.strip()[-1000:]}",
            "a static build needs libc6-dev (static glibc); scripts/setup installs it",
        )
    partial.rename(binary)
    return binary


def pause_image() -> tuple[str, Image]:
    """The sandbox image and its local name (tagged with its content hash, never pulled)."""
    binary = pause_binary().read_bytes()
    image = build_image(
        [layer([Entry("pause", binary, mode=0o755)])],
        ImageConfig(entrypoint=("/pause",)),
    )
    return f"fjord.local/pause:{image.digest.split(':')[1][:12]}", image
