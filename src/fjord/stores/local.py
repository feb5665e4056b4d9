"""The embedded default store: a directory of OCI image layouts, one per repository.

Layout under ``root`` (each repository directory is a valid OCI image layout that tools such as
``oras --oci-layout`` or ``skopeo oci:`` can read)::

    <root>/<repository>/oci-layout          {"imageLayoutVersion": "1.0.0"}
    <root>/<repository>/index.json          tagged manifests (annotation
                                            org.opencontainers.image.ref.name = tag)
    <root>/<repository>/blobs/sha256/<hex>  blobs and manifests, content-addressed
    <root>/<repository>/.lock               flock serialising index.json updates

Crash safety: every file is written to a ``.tmp-*`` sibling, flushed and fsynced, then renamed
over its final name, so a reader sees either the old or the new file, never a partial one; a
crash leaves at most a stray ``.tmp-*`` file, which is never read. Blobs are created once and
never rewritten. ``index.json`` only ever gains a tag after the manifest and every blob it
references exist on disk (checked by :meth:`Store.tag`).

Repository names may not contain the layout's own names (``blobs``, ``index.json``,
``oci-layout``) as path components, because repositories nest as sub-directories.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fjord.artifact.digest import canonical_json, is_digest
from fjord.stores.base import BlobOutcome, Store, StoreError

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_RESERVED = frozenset({"blobs", "index.json", "oci-layout"})


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that no reader or crash ever sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    # Persist the rename itself, so a power loss cannot resurrect the old directory entry.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class LocalStore(Store):
    """OCI image layouts in a local directory; safe for several processes on one machine."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return f"local store {self.root}"

    def docker_reference(self, repository: str) -> str:
        return f"localhost/{repository}"

    async def aclose(self) -> None:
        """Nothing to release: every operation opens and closes its own files."""

    # ---- paths -----------------------------------------------------------------------------

    def _repo(self, repository: str) -> Path:
        if _RESERVED & set(repository.split("/")):
            raise StoreError(
                f"{self.describe()}: repository {repository!r} uses a reserved name",
                hint=f"avoid the path components {sorted(_RESERVED)}",
            )
        return self.root / repository

    def _blob_path(self, repository: str, digest: str) -> Path:
        return self._repo(repository) / "blobs" / "sha256" / digest.removeprefix("sha256:")

    # ---- synchronous file work, run in a thread --------------------------------------------

    def _ensure_layout(self, repo: Path) -> None:
        if not (repo / "oci-layout").exists():
            atomic_write(repo / "oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))

    @contextlib.contextmanager
    def _locked(self, repo: Path) -> Iterator[None]:
        repo.mkdir(parents=True, exist_ok=True)
        with open(repo / ".lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    @staticmethod
    def _read_index(repo: Path) -> dict[str, Any]:
        try:
            index: dict[str, Any] = json.loads((repo / "index.json").read_bytes())
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        return index

    def _write_blob(self, repository: str, digest: str, data: bytes) -> BlobOutcome:
        path = self._blob_path(repository, digest)
        if path.exists():
            return BlobOutcome.EXISTS
        self._ensure_layout(self._repo(repository))
        atomic_write(path, data)
        return BlobOutcome.UPLOADED

    def _mount_blob(self, repository: str, digest: str, sources: Sequence[str]) -> bool:
        target = self._blob_path(repository, digest)
        for source in sources:
            origin = self._blob_path(source, digest)
            if not origin.exists():
                continue
            self._ensure_layout(self._repo(repository))
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                # A hard link is the local analogue of a registry mount: no bytes copied, and
                # the link appears atomically under its final name.
                os.link(origin, target)
            except FileExistsError:
                pass
            except OSError:
                continue  # e.g. across file systems: fall back to an upload
            return True
        return False

    def _read(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def _resolve_sync(self, repository: str, tag: str) -> tuple[str, str] | None:
        for desc in self._read_index(self._repo(repository))["manifests"]:
            if (desc.get("annotations") or {}).get(ANNOTATION_REF_NAME) == tag:
                return str(desc["digest"]), str(desc.get("mediaType", ""))
        return None

    def _set_tag_sync(
        self, repository: str, tag: str, digest: str, size: int, media_type: str
    ) -> None:
        repo = self._repo(repository)
        with self._locked(repo):
            self._ensure_layout(repo)
            index = self._read_index(repo)
            manifests = [
                d
                for d in index["manifests"]
                if (d.get("annotations") or {}).get(ANNOTATION_REF_NAME) != tag
            ]
            manifests.append(
                {
                    "mediaType": media_type,
                    "digest": digest,
                    "size": size,
                    "annotations": {ANNOTATION_REF_NAME: tag},
                }
            )
            manifests.sort(key=lambda d: d["annotations"][ANNOTATION_REF_NAME])
            index["manifests"] = manifests
            atomic_write(repo / "index.json", canonical_json(index))

    def _delete_tag_sync(self, repository: str, tag: str) -> bool:
        repo = self._repo(repository)
        if not repo.exists():
            return False
        with self._locked(repo):
            index = self._read_index(repo)
            manifests = [
                d
                for d in index["manifests"]
                if (d.get("annotations") or {}).get(ANNOTATION_REF_NAME) != tag
            ]
            if len(manifests) == len(index["manifests"]):
                return False
            index["manifests"] = manifests
            atomic_write(repo / "index.json", canonical_json(index))
            return True

    def _list_tags_sync(self, repository: str) -> list[str]:
        return [
            str(d["annotations"][ANNOTATION_REF_NAME])
            for d in self._read_index(self._repo(repository))["manifests"]
            if ANNOTATION_REF_NAME in (d.get("annotations") or {})
        ]

    # ---- Store primitives ------------------------------------------------------------------

    async def _blob_exists(self, repository: str, digest: str) -> bool:
        return await asyncio.to_thread(self._blob_path(repository, digest).is_file)

    async def _put_blob(
        self, repository: str, digest: str, data: bytes, mount_from: Sequence[str]
    ) -> BlobOutcome:
        if await self._blob_exists(repository, digest):
            return BlobOutcome.EXISTS
        mounted = bool(mount_from) and await asyncio.to_thread(
            self._mount_blob, repository, digest, mount_from
        )
        if mounted:
            return BlobOutcome.MOUNTED
        return await asyncio.to_thread(self._write_blob, repository, digest, data)

    async def _get_blob(self, repository: str, digest: str) -> bytes | None:
        return await asyncio.to_thread(self._read, self._blob_path(repository, digest))

    async def _put_manifest(
        self, repository: str, digest: str, manifest: bytes, media_type: str
    ) -> None:
        # In an OCI layout a manifest is just another blob; only tags go into index.json.
        await asyncio.to_thread(self._write_blob, repository, digest, manifest)

    async def _get_manifest(self, repository: str, reference: str) -> bytes | None:
        digest: str | None = reference
        if not is_digest(reference):
            digest = await self._resolve(repository, reference)
        if digest is None:
            return None
        return await self._get_blob(repository, digest)

    async def _set_tag(
        self, repository: str, tag: str, digest: str, manifest: bytes, media_type: str
    ) -> None:
        await asyncio.to_thread(
            self._set_tag_sync, repository, tag, digest, len(manifest), media_type
        )

    async def _resolve(self, repository: str, tag: str) -> str | None:
        found = await asyncio.to_thread(self._resolve_sync, repository, tag)
        return found[0] if found else None

    async def _list_tags(self, repository: str) -> list[str]:
        return await asyncio.to_thread(self._list_tags_sync, repository)

    async def _delete_tag(self, repository: str, tag: str) -> bool:
        return await asyncio.to_thread(self._delete_tag_sync, repository, tag)
