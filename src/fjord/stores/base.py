"""The store interface every artifact store implements, and the rules they share.

A store holds OCI images by repository (``ttd/apps/app1``): content-addressed blobs, manifests
addressed by digest, and tags that name a manifest. Implementations supply a handful of
primitives (the ``_``-prefixed abstract methods); the public operations built on them live here
so that every store validates names, verifies digests and orders writes the same way:

* :meth:`Store.push` checks every blob against its digest *before* writing anything, uploads
  the blobs (side by side, at most :attr:`Store.concurrency` requests at a time), then, once
  every one of them is stored, the manifest, and only then (if asked) moves a tag;
* :meth:`Store.tag` moves one or more tags only after confirming in the store itself that the
  manifest and every blob it references exist, so a tag never points at something missing;
* :meth:`Store.pull` re-hashes everything it reads, so a corrupted or tampered store is caught.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Sequence
from enum import StrEnum
from functools import partial
from types import TracebackType
from typing import Any, Self

from fjord.artifact import Artifact, Image, sha256_digest, verify_digest
from fjord.artifact.bundle import index_descriptors, referrers_tag
from fjord.artifact.digest import check_digest, is_digest
from fjord.artifact.errors import ArtifactError, DigestMismatchError
from fjord.artifact.oci import OCI_INDEX, parse_manifest, referenced_blobs
from fjord.errors import FjordError
from fjord.stores.concurrency import side_by_side

# The distribution spec's repository name grammar, and its tag grammar.
_REPOSITORY_RE = re.compile(
    r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$"
)
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


class StoreError(FjordError):
    """A store operation failed; the message names the store, repository and operation."""


class NotFoundError(StoreError):
    """The repository, tag, manifest or blob does not exist in the store."""


class BlobOutcome(StrEnum):
    """How a blob came to be in the repository."""

    EXISTS = "exists"  # it was already there; nothing was sent
    MOUNTED = "mounted"  # the store linked it from another repository without a transfer
    UPLOADED = "uploaded"  # its bytes were sent


def check_repository(repository: str) -> str:
    """Return ``repository`` if it follows the OCI distribution name grammar."""
    if len(repository) > 255 or not _REPOSITORY_RE.fullmatch(repository):
        raise StoreError(
            f"invalid repository name {repository!r}",
            hint="lower-case letters, digits and '.', '_', '-' separators, '/' between parts",
        )
    return repository


def check_tag(tag: str) -> str:
    """Return ``tag`` if it follows the OCI tag grammar."""
    if not _TAG_RE.fullmatch(tag):
        raise StoreError(f"invalid tag {tag!r}", hint="[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
    return tag


def _blobs_of(document: dict[str, Any]) -> list[str]:
    """The digests of the blobs a manifest references, each once, in order."""
    return list(dict.fromkeys(d["digest"] for d in referenced_blobs(document)))


def check_reference(reference: str) -> str:
    """A tag or a digest."""
    return check_digest(reference) if ":" in reference else check_tag(reference)


class Store(ABC):
    """An artifact store: blobs, manifests and tags per repository. Use as an async context."""

    # How many requests one operation (a push's blobs, a tag's checks) has in flight at once:
    # enough to hide the round trips of a release's few blobs, few enough to stay polite.
    concurrency = 8

    # ---- primitives the implementations provide -------------------------------------------

    @abstractmethod
    def describe(self) -> str:
        """A short name of the store for error messages (URL or path)."""

    @abstractmethod
    def docker_reference(self, repository: str) -> str:
        """The ``docker-reference`` recorded in signature payloads (``host/repository``)."""

    @abstractmethod
    async def _blob_exists(self, repository: str, digest: str) -> bool: ...

    @abstractmethod
    async def _put_blob(
        self, repository: str, digest: str, data: bytes, mount_from: Sequence[str]
    ) -> BlobOutcome:
        """Store ``data`` under ``digest`` (already verified) unless the repository holds it
        (then EXISTS, without sending it where the store can tell first); create-only, atomic.
        """

    @abstractmethod
    async def _get_blob(self, repository: str, digest: str) -> bytes | None: ...

    @abstractmethod
    async def _put_manifest(
        self, repository: str, digest: str, manifest: bytes, media_type: str
    ) -> None:
        """Store a manifest by digest, without tagging it; its blobs are already stored."""

    @abstractmethod
    async def _get_manifest(self, repository: str, reference: str) -> bytes | None:
        """The manifest bytes for a tag or digest, or None."""

    @abstractmethod
    async def _set_tag(
        self, repository: str, tag: str, digest: str, manifest: bytes, media_type: str
    ) -> None:
        """Point ``tag`` at ``digest``; called only once the manifest and blobs are verified."""

    @abstractmethod
    async def _resolve(self, repository: str, tag: str) -> str | None: ...

    @abstractmethod
    async def _list_tags(self, repository: str) -> list[str]: ...

    @abstractmethod
    async def _delete_tag(self, repository: str, tag: str) -> bool: ...

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections and clients the store holds."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ---- the operations callers use --------------------------------------------------------

    async def blob_exists(self, repository: str, digest: str) -> bool:
        """Whether the repository holds the blob."""
        return await self._blob_exists(check_repository(repository), check_digest(digest))

    async def put_blob(
        self, repository: str, data: bytes, *, mount_from: Sequence[str] = ()
    ) -> BlobOutcome:
        """Store one blob, mounting it from one of ``mount_from`` where the store can."""
        check_repository(repository)
        mounts = [check_repository(r) for r in mount_from if r != repository]
        return await self._put_blob(repository, sha256_digest(data), data, mounts)

    async def get_blob(self, repository: str, digest: str) -> bytes:
        """A blob's bytes, re-hashed against ``digest``."""
        data = await self._get_blob(check_repository(repository), check_digest(digest))
        if data is None:
            raise NotFoundError(f"{self.describe()}: blob {digest} not found in {repository}")
        return self._verified(data, digest, repository)

    def _verified(self, data: bytes, digest: str, repository: str) -> bytes:
        """``data`` if it matches ``digest``; otherwise an error naming the store and place."""
        try:
            return verify_digest(data, digest)
        except DigestMismatchError as exc:
            raise DigestMismatchError(
                f"{self.describe()}, repository {repository}: {exc}",
                hint="the store's content is corrupt or was tampered with",
            ) from exc

    async def push(
        self,
        repository: str,
        image: Image | Artifact,
        *,
        tag: str | None = None,
        mount_from: Sequence[str] = (),
    ) -> str:
        """Upload an image's blobs, then its manifest; then move ``tag`` if given.

        Returns the manifest digest. Nothing is written unless every blob matches its digest.
        """
        if tag is not None:
            check_tag(tag)
        img = image.image if isinstance(image, Artifact) else image
        (digest,) = await self.push_all(repository, [img], mount_from=mount_from)
        if tag is not None:
            await self.tag(repository, digest, tag, manifest=img.manifest)
        return digest

    async def push_all(
        self, repository: str, images: Sequence[Image], *, mount_from: Sequence[str] = ()
    ) -> list[str]:
        """Upload the images' blobs (each once, however many images share it) side by side,
        then, once every one is stored, their manifests; returns the manifest digests.

        Nothing is written unless every blob of every image matches its digest.
        """
        check_repository(repository)
        for img in images:
            img.check_complete()
        mounts = [check_repository(r) for r in mount_from if r != repository]
        blobs = {digest: img.blobs[digest] for img in images for digest in _blobs_of(img.document)}
        await side_by_side(
            lambda digest: self._put_blob(repository, digest, blobs[digest], mounts),
            blobs,
            limit=self.concurrency,
        )
        await side_by_side(
            lambda img: self._put_manifest(repository, img.digest, img.manifest, img.media_type),
            images,
            limit=self.concurrency,
        )
        return [img.digest for img in images]

    async def tag(
        self, repository: str, digest: str, *tags: str, manifest: bytes | None = None
    ) -> None:
        """Point each of ``tags`` at ``digest``, in order, after checking (once for all of
        them) that the manifest and every blob it references exist in the store.

        ``manifest``: the bytes the caller expects behind ``digest`` (it has just pushed them);
        then the blob checks go out together with the manifest's read instead of after it.
        """
        check_repository(repository)
        check_digest(digest)
        for tag in tags:
            check_tag(tag)
        if not tags:
            return
        where = f"{repository}:{','.join(tags)}"
        stored, missing = await self._stored_and_missing(repository, digest, manifest)
        if stored is None:
            raise NotFoundError(
                f"{self.describe()}: cannot tag {where}: manifest {digest} not found"
            )
        if missing:
            raise NotFoundError(
                f"{self.describe()}: cannot tag {where}: manifest {digest} "
                f"references missing blob {missing[0]}"
            )
        document = parse_manifest(stored)
        media_type = str(document.get("mediaType") or "application/vnd.oci.image.manifest.v1+json")
        for tag in tags:
            await self._set_tag(repository, tag, digest, stored, media_type)

    async def _stored_and_missing(
        self, repository: str, digest: str, manifest: bytes | None
    ) -> tuple[bytes | None, list[str]]:
        """The manifest stored under ``digest`` (None if absent, checked against the digest)
        and the blobs it references that the repository lacks.

        With ``manifest`` (what the caller expects there) the blob checks go out alongside the
        manifest's read; the stored bytes matching the digest makes them the same manifest.
        """
        expected = (
            [] if manifest is None else _blobs_of(parse_manifest(verify_digest(manifest, digest)))
        )
        reads: list[Callable[[], Awaitable[object]]] = [
            partial(self._get_manifest, repository, digest),
            *(partial(self._blob_exists, repository, blob) for blob in expected),
        ]
        stored, *found = await side_by_side(lambda read: read(), reads, limit=self.concurrency)
        if not isinstance(stored, bytes):
            return None, []
        self._verified(stored, digest, repository)
        if manifest is None:
            expected = _blobs_of(parse_manifest(stored))
            found = await side_by_side(
                partial(self._blob_exists, repository), expected, limit=self.concurrency
            )
        return stored, [blob for blob, exists in zip(expected, found, strict=True) if not exists]

    async def resolve(self, repository: str, tag: str) -> str | None:
        """The digest ``tag`` points at, or None if the tag does not exist."""
        return await self._resolve(check_repository(repository), check_tag(tag))

    async def list_tags(self, repository: str) -> list[str]:
        """All tags of the repository, sorted; empty if the repository does not exist."""
        return sorted(await self._list_tags(check_repository(repository)))

    async def delete_tag(self, repository: str, tag: str) -> bool:
        """Remove a tag (the manifest stays, addressable by digest). False if it was absent."""
        return await self._delete_tag(check_repository(repository), check_tag(tag))

    async def get_manifest(self, repository: str, reference: str) -> bytes:
        """Manifest bytes by tag or digest; checked against the digest when one is given."""
        check_repository(repository)
        check_reference(reference)
        manifest = await self._get_manifest(repository, reference)
        if manifest is None:
            raise NotFoundError(
                f"{self.describe()}: manifest {repository}:{reference} not found"
                if not is_digest(reference)
                else f"{self.describe()}: manifest {repository}@{reference} not found"
            )
        if is_digest(reference):
            self._verified(manifest, reference, repository)
        return manifest

    async def pull_image(self, repository: str, reference: str) -> Image:
        """A manifest and all its blobs, every digest verified."""
        manifest = await self.get_manifest(repository, reference)
        digests = _blobs_of(parse_manifest(manifest))
        found = await side_by_side(
            partial(self.get_blob, repository), digests, limit=self.concurrency
        )
        return Image(manifest=manifest, blobs=dict(zip(digests, found, strict=True)))

    async def pull(self, repository: str, reference: str) -> Artifact:
        """A Flux artifact by tag or digest, every digest verified."""
        image = await self.pull_image(repository, reference)
        try:
            return Artifact.from_image(image)
        except ArtifactError as exc:
            raise StoreError(
                f"{self.describe()}: {repository}:{reference} is not a Flux artifact: {exc}"
            ) from exc

    # ---- OCI referrers (signature bundles and attestations attached to a manifest) ---------

    async def referrers_api(self, repository: str, digest: str) -> bytes | None:
        """The registry's referrers API answer (an OCI index) for ``digest``, or None when the
        store has no such API; then referrers live under the fallback tag (see ``referrers``).
        """
        return None

    async def referrers(self, repository: str, digest: str) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose ``subject`` is ``digest``.

        Read like go-containerregistry (and so Flux and cosign) reads them: the referrers API
        where the store has one, else the index under the ``sha256-<hex>`` fallback tag.
        """
        check_repository(repository)
        index = await self.referrers_api(repository, check_digest(digest))
        if index is None:
            return await self.fallback_referrers(repository, digest)
        return index_descriptors(index)

    async def fallback_referrers(self, repository: str, digest: str) -> list[dict[str, Any]]:
        """The descriptors listed under the ``sha256-<hex>`` referrers fallback tag."""
        check_repository(repository)
        return index_descriptors(await self._get_manifest(repository, referrers_tag(digest)))

    async def put_index(
        self, repository: str, index: bytes, *, tag: str, pushed: Collection[str] = ()
    ) -> str:
        """Store an OCI image index and point ``tag`` at it, once every listed manifest exists.

        ``pushed``: digests of manifests the caller has just pushed, which need no re-check.
        """
        check_repository(repository)
        check_tag(tag)
        listed = [check_digest(d["digest"]) for d in index_descriptors(index)]
        unconfirmed = [d for d in dict.fromkeys(listed) if d not in pushed]
        found = await side_by_side(
            partial(self._get_manifest, repository), unconfirmed, limit=self.concurrency
        )
        for listed_digest, manifest in zip(unconfirmed, found, strict=True):
            if manifest is None:
                raise NotFoundError(
                    f"{self.describe()}: cannot tag index {repository}:{tag}: manifest "
                    f"{listed_digest} not found"
                )
        digest = sha256_digest(index)
        await self._put_manifest(repository, digest, index, OCI_INDEX)
        await self._set_tag(repository, tag, digest, index, OCI_INDEX)
        return digest
