"""Azure Blob Storage as a store, readable both by fjord (OCI) and by Flux's Bucket source.

Layout in one container (``<repository>`` is e.g. ``ttd/apps/app1``)::

    oci/<repository>/blobs/sha256/<hex>      blob bytes; create-only (If-None-Match: *)
    oci/<repository>/manifests/sha256/<hex>  manifest bytes; create-only; Content-Type is the
                                             manifest media type
    oci/<repository>/tags/<tag>              text: the digest the tag points at (overwritten
                                             when the tag moves, always last)
    tree/<repository>/<tag>/manifests.yaml   the ``<tag>/`` directory of the Flux artifact the
                                             tag points at, as ONE multi-document YAML blob

The ``oci/`` half gives pull, verify and tag the same semantics as the other stores. The
``tree/`` half is for Flux: when a tag named after a directory of the artifact moves (``tt02``
for a release, ``current`` for a sync root published that way), that directory's YAML files are
joined into one blob, so a Bucket with ``prefix: tree/ttd/apps/app1/tt02/`` and a Kustomization
with ``path: ./tree/ttd/apps/app1/tt02`` apply them (Flux keeps the full object key as the path;
the prefix only filters). Tags whose artifact has no directory of that name (e.g. ``latest``,
``sha256-….sig``) get no tree.

Why one blob: replacing a blob is atomic in Azure Storage, so a Bucket listing and downloading
the prefix while a tag moves gets either the old release's manifests or the new one's, never a
mix (a tree of several objects, updated one by one, can be read half-way). Flux's kustomize
generator treats one file of many documents exactly like many files.

The tree blob carries the SHA-256 of its content (``fjordsha256``) and the manifest digest it
was made from (``fjorddigest``) as metadata. An unchanged tree is not re-uploaded, so its ETag,
and with it the Bucket revision, stays the same on a no-op deploy; and :meth:`tree_state` maps
the revision a Bucket reports back to the digest (see :func:`bucket_revision`).
"""

from __future__ import annotations

import contextlib
import hashlib
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
from fjord.stores.base import BlobOutcome, Store, StoreError, check_repository, check_tag

# Azurite 3.35 rejects the SDK's default API version unless started with
# --skipApiVersionCheck; pinning a version both sides know keeps either way working.
DEFAULT_API_VERSION = "2026-06-06"
HASH_METADATA = "fjordsha256"
DIGEST_METADATA = "fjorddigest"
TREE_FILE = "manifests.yaml"
# What Flux's kustomize generator reads from a directory; anything else cannot be applied.
_MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def bucket_revision(etags: Mapping[str, str]) -> str:
    """The revision a Flux Bucket reports for objects ``{key: etag}`` (source-controller's
    ``index.Digester``: SHA-256 over ``"<key> <etag>\n"`` in key order). The ETag is the one
    a download returns (the quoted header value): Flux re-indexes every object with it.
    """
    lines = "".join(f"{key} {etags[key]}\n" for key in sorted(etags))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


def join_manifests(files: Mapping[str, bytes]) -> bytes:
    """Files of one directory as one multi-document YAML, in path order."""
    parts = []
    for path in sorted(files):
        if not path.endswith(_MANIFEST_SUFFIXES):
            raise StoreError(
                f"cannot publish {path!r} for Flux's Bucket source: not a manifest",
                hint="an environment directory holds only .yaml, .yml or .json files",
            )
        text = files[path]
        parts.append(text if text.endswith(b"\n") or not text else text + b"\n")
    return b"".join(p if p.startswith(b"---") else b"---\n" + p for p in parts if p.strip())


@dataclass(frozen=True)
class TreeState:
    """A tag's tree as a Flux Bucket on ``tree_prefix(repository, tag)`` sees it now."""

    revision: str  # what the Bucket reports (``bucket_revision``)
    digest: str | None  # the manifest digest the tree blob was made from


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

    @classmethod
    def from_account_key(
        cls,
        account_url: str,
        container: str,
        *,
        account_name: str,
        account_key: str,
        api_version: str | None = DEFAULT_API_VERSION,
        timeout: float = 60.0,
    ) -> AzureBlobStore:
        """A store on ``container`` of the account at ``account_url``, writing with its key."""
        options: dict[str, Any] = {"connection_timeout": 10, "read_timeout": timeout}
        if api_version:
            options["api_version"] = api_version
        credential = {"account_name": account_name, "account_key": account_key}
        return cls(ContainerClient(account_url, container, credential=credential, **options))

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

    @classmethod
    def tree_key(cls, repository: str, tag: str) -> str:
        """The one blob holding a tag's tree."""
        return cls.tree_prefix(repository, tag) + TREE_FILE

    @property
    def container_name(self) -> str:
        return str(self._container.container_name)

    async def tree_state(self, repository: str, tag: str) -> TreeState | None:
        """The Bucket revision of a tag's tree and the digest it holds; None without a tree.

        Every object under the prefix counts (as it does for Flux); the ETags are read with one
        properties request per object, which also returns the digest metadata of the same
        version of the blob, so revision and digest always belong together.
        """
        prefix = self.tree_prefix(check_repository(repository), check_tag(tag))
        etags: dict[str, str] = {}
        digest = None
        for key in sorted(await self._list(prefix, repository)):
            try:
                props = await self._container.get_blob_client(key).get_blob_properties()
            except ResourceNotFoundError:
                continue  # deleted since the listing; Flux drops it the same way
            except HttpResponseError as exc:
                raise self._error(exc, repository, f"read properties of {key}") from exc
            etags[key] = str(props.etag)
            if key == self.tree_key(repository, tag):
                digest = (props.metadata or {}).get(DIGEST_METADATA)
        if not etags:
            return None
        return TreeState(revision=bucket_revision(etags), digest=digest)

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
            await self._sync_tree(repository, tag, digest, join_manifests(files))
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

    async def _sync_tree(self, repository: str, tag: str, digest: str, content: bytes) -> None:
        """Replace the tag's tree blob in one write (atomic for readers), then drop any other
        object under its prefix (left by an older layout)."""
        key = self.tree_key(repository, tag)
        existing = await self._list(self.tree_prefix(repository, tag), repository)
        sha = hashlib.sha256(content).hexdigest()
        current = existing.get(key, {})
        if current.get(HASH_METADATA) != sha or current.get(DIGEST_METADATA) != digest:
            metadata = {HASH_METADATA: sha, DIGEST_METADATA: digest}
            await self._overwrite(key, content, "application/yaml", repository, metadata)
        # else unchanged: keep its ETag so Flux sees no new revision
        for stale in sorted(existing.keys() - {key}):
            await self._delete(stale, repository)

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
