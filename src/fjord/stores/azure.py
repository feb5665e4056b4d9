"""Azure Blob Storage as a store, readable both by fjord (OCI) and by Flux's Bucket source.

Layout in one container (``<repository>`` is e.g. ``ttd/apps/app1``)::

    oci/<repository>/blobs/sha256/<hex>      blob bytes; create-only (If-None-Match: *)
    oci/<repository>/manifests/sha256/<hex>  manifest bytes; create-only; Content-Type is the
                                             manifest media type
    oci/<repository>/tags/<tag>              text: the digest the tag points at (overwritten
                                             when the tag moves, always last)
    tree/<repository>/<tag>/<path>           plain files: the ``<tag>/`` directory of the Flux
                                             artifact the tag points at

The ``oci/`` half gives pull, verify and tag the same semantics as the other stores. The
``tree/`` half is for Flux: when a tag named after an environment moves, the artifact's files
for that environment (``tt02/…``) are mirrored as plain objects, so a Bucket with
``prefix: tree/ttd/apps/app1/`` and a Kustomization with ``path: ./tree/ttd/apps/app1/tt02``
apply them (Flux keeps the full object key as the path; the prefix only filters). Tags whose
artifact has no directory of that name (e.g. ``latest``, ``sha256-….sig``) get no tree.

Tree objects carry their SHA-256 in the ``fjordsha256`` metadata; unchanged files are not
re-uploaded, so their ETags, and with them the Bucket revision, stay the same on a no-op
deploy. The tree is updated file by file (new and changed files first, stale files deleted
last), so Flux may briefly list a mix of old and new files; the tag object is written only
after the tree is complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import urllib.parse
from collections.abc import Sequence
from typing import Any

from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import ContainerClient

from fjord.artifact.digest import is_digest, verify_digest
from fjord.artifact.errors import ArtifactError
from fjord.artifact.oci import Artifact, parse_manifest, referenced_blobs
from fjord.stores.base import BlobOutcome, Store, StoreError

# Azurite 3.35 rejects the SDK's default API version unless started with
# --skipApiVersionCheck; pinning a version both sides know keeps either way working.
DEFAULT_API_VERSION = "2026-06-06"
HASH_METADATA = "fjordsha256"


class AzureBlobStore(Store):
    """Artifacts in an Azure Blob container (or Azurite)."""

    def __init__(self, container: ContainerClient) -> None:
        self._container = container
        self._container_ready = False
        parsed = urllib.parse.urlsplit(container.url)
        self._location = f"{parsed.netloc}{parsed.path}".rstrip("/")

    @classmethod
    def from_connection_string(
        cls,
        connection_string: str,
        container: str,
        *,
        api_version: str | None = DEFAULT_API_VERSION,
        timeout: float = 60.0,
    ) -> AzureBlobStore:
        """A store on ``container`` (created on first write if missing)."""
        # Any: the SDK's kwargs are untyped pass-throughs to its pipeline.
        options: dict[str, Any] = {"connection_timeout": 10, "read_timeout": timeout}
        if api_version:
            options["api_version"] = api_version
        client = ContainerClient.from_connection_string(connection_string, container, **options)
        return cls(client)

    def describe(self) -> str:
        return f"azure blob {self._location}"

    def docker_reference(self, repository: str) -> str:
        return f"{self._location}/{repository}"

    async def aclose(self) -> None:
        await self._container.close()

    # ---- keys ------------------------------------------------------------------------------

    @staticmethod
    def _blob_key(repository: str, digest: str) -> str:
        return f"oci/{repository}/blobs/sha256/{digest.removeprefix('sha256:')}"

    @staticmethod
    def _manifest_key(repository: str, digest: str) -> str:
        return f"oci/{repository}/manifests/sha256/{digest.removeprefix('sha256:')}"

    @staticmethod
    def _tag_key(repository: str, tag: str) -> str:
        return f"oci/{repository}/tags/{tag}"

    @staticmethod
    def tree_prefix(repository: str, tag: str | None = None) -> str:
        """The key prefix of the plain tree of a repository (a Bucket's ``prefix``)."""
        return f"tree/{repository}/" + (f"{tag}/" if tag else "")

    # ---- low-level helpers -----------------------------------------------------------------

    def _error(self, exc: HttpResponseError, repository: str, operation: str) -> StoreError:
        return StoreError(
            f"{self.describe()}, repository {repository}: {operation} failed: "
            f"HTTP {exc.status_code} ({getattr(exc, 'error_code', None) or exc.reason})"
        )

    async def _ensure_container(self) -> None:
        if self._container_ready:
            return
        with contextlib.suppress(ResourceExistsError):
            await self._container.create_container()
        self._container_ready = True

    async def _exists(self, key: str, repository: str) -> bool:
        try:
            return bool(await self._container.get_blob_client(key).exists())
        except HttpResponseError as exc:
            raise self._error(exc, repository, f"check {key}") from exc

    async def _download(self, key: str, repository: str) -> bytes | None:
        try:
            stream = await self._container.download_blob(key)
            return bytes(await stream.readall())
        except ResourceNotFoundError:
            return None
        except HttpResponseError as exc:
            raise self._error(exc, repository, f"download {key}") from exc

    async def _create_only(self, key: str, data: bytes, content_type: str, repository: str) -> bool:
        """Upload unless the key exists; True if this call created it."""
        await self._ensure_container()
        try:
            await self._container.upload_blob(
                key,
                data,
                overwrite=False,
                if_none_match="*",
                content_settings=ContentSettings(content_type=content_type),
            )
        except ResourceExistsError:
            return False
        except HttpResponseError as exc:
            raise self._error(exc, repository, f"upload {key}") from exc
        return True

    async def _overwrite(
        self,
        key: str,
        data: bytes,
        content_type: str,
        repository: str,
        metadata: dict[str, str] | None = None,
    ) -> None:
        await self._ensure_container()
        try:
            await self._container.upload_blob(
                key,
                data,
                overwrite=True,
                metadata=metadata,
                content_settings=ContentSettings(content_type=content_type),
            )
        except HttpResponseError as exc:
            raise self._error(exc, repository, f"upload {key}") from exc

    async def _delete(self, key: str, repository: str) -> bool:
        try:
            await self._container.delete_blob(key)
        except ResourceNotFoundError:
            return False
        except HttpResponseError as exc:
            raise self._error(exc, repository, f"delete {key}") from exc
        return True

    async def _list(self, prefix: str, repository: str) -> dict[str, dict[str, str]]:
        """Keys under ``prefix`` with their metadata; empty if the container does not exist."""
        found: dict[str, dict[str, str]] = {}
        try:
            async for item in self._container.list_blobs(
                name_starts_with=prefix, include=["metadata"]
            ):
                found[item.name] = dict(item.metadata or {})
        except ResourceNotFoundError:
            return {}
        except HttpResponseError as exc:
            raise self._error(exc, repository, f"list {prefix}") from exc
        return found

    # ---- Store primitives ------------------------------------------------------------------

    async def _blob_exists(self, repository: str, digest: str) -> bool:
        return await self._exists(self._blob_key(repository, digest), repository)

    async def _put_blob(
        self, repository: str, digest: str, data: bytes, mount_from: Sequence[str]
    ) -> BlobOutcome:
        # No cross-repository mount: a server-side copy costs about as much as the upload.
        verify_digest(data, digest)
        key = self._blob_key(repository, digest)
        created = await self._create_only(key, data, "application/octet-stream", repository)
        return BlobOutcome.UPLOADED if created else BlobOutcome.EXISTS

    async def _get_blob(self, repository: str, digest: str) -> bytes | None:
        return await self._download(self._blob_key(repository, digest), repository)

    async def _put_manifest(
        self, repository: str, digest: str, manifest: bytes, media_type: str
    ) -> None:
        verify_digest(manifest, digest)
        await self._create_only(
            self._manifest_key(repository, digest), manifest, media_type, repository
        )

    async def _get_manifest(self, repository: str, reference: str) -> bytes | None:
        digest: str | None = reference
        if not is_digest(reference):
            digest = await self._resolve(repository, reference)
        if digest is None:
            return None
        return await self._download(self._manifest_key(repository, digest), repository)

    async def _set_tag(
        self, repository: str, tag: str, digest: str, manifest: bytes, media_type: str
    ) -> None:
        files = await self._environment_files(repository, tag, manifest)
        if files is not None:
            await self._sync_tree(repository, tag, files)
        await self._overwrite(
            self._tag_key(repository, tag), digest.encode(), "text/plain", repository
        )

    async def _environment_files(
        self, repository: str, tag: str, manifest: bytes
    ) -> dict[str, bytes] | None:
        """The artifact's ``<tag>/`` files, or None if it is not a Flux artifact or has none."""
        try:
            descriptors = referenced_blobs(parse_manifest(manifest))
        except ArtifactError:
            return None  # an index (e.g. a referrers fallback tag) has no tree
        blobs = {}
        for desc in descriptors:
            data = await self._get_blob(repository, desc["digest"])
            if data is None:
                return None
            blobs[desc["digest"]] = verify_digest(data, desc["digest"])
        if len(descriptors) != 2:
            return None
        try:
            artifact = Artifact(
                manifest=manifest,
                config=blobs[descriptors[0]["digest"]],
                layer=blobs[descriptors[1]["digest"]],
            )
        except ArtifactError:
            return None  # e.g. a signature manifest: OCI only
        prefix = f"{tag}/"
        files = {p: c for p, c in artifact.files().items() if p.startswith(prefix)}
        return files or None

    async def _sync_tree(self, repository: str, tag: str, files: dict[str, bytes]) -> None:
        root = self.tree_prefix(repository)
        existing = await self._list(self.tree_prefix(repository, tag), repository)
        wanted = {root + path: content for path, content in files.items()}
        for key, content in sorted(wanted.items()):
            sha = hashlib.sha256(content).hexdigest()
            if existing.get(key, {}).get(HASH_METADATA) == sha:
                continue  # unchanged: keep its ETag so Flux sees no new revision
            content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
            await self._overwrite(key, content, content_type, repository, {HASH_METADATA: sha})
        for key in sorted(existing.keys() - wanted.keys()):
            await self._delete(key, repository)

    async def _resolve(self, repository: str, tag: str) -> str | None:
        data = await self._download(self._tag_key(repository, tag), repository)
        if data is None:
            return None
        digest = data.decode().strip()
        if not is_digest(digest):
            raise StoreError(f"{self.describe()}: tag object for {repository}:{tag} is corrupt")
        return digest

    async def _list_tags(self, repository: str) -> list[str]:
        prefix = f"oci/{repository}/tags/"
        return [key.removeprefix(prefix) for key in await self._list(prefix, repository)]

    async def _delete_tag(self, repository: str, tag: str) -> bool:
        existed = await self._delete(self._tag_key(repository, tag), repository)
        for key in sorted(await self._list(self.tree_prefix(repository, tag), repository)):
            await self._delete(key, repository)
        return existed
