"""Flux OCI artifacts: the manifest, config and content layer ``flux push artifact`` writes.

An :class:`Image` is any OCI image manifest plus the blobs it references (stores push and pull
images). An :class:`Artifact` is an image in Flux's format: one config of media type
``application/vnd.cncf.flux.config.v1+json`` and exactly one gzip tarball layer of media type
``application/vnd.cncf.flux.content.v1.tar+gzip`` (reference/flux.md section 1).

Every JSON document is canonical (sorted keys, compact), and the creation time defaults to the
Unix epoch, so the manifest digest depends only on the files and the annotations passed in.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fjord.artifact import tarball
from fjord.artifact.digest import canonical_json, check_digest, sha256_digest, verify_digest
from fjord.artifact.errors import ArtifactError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
FLUX_CONFIG = "application/vnd.cncf.flux.config.v1+json"
FLUX_CONTENT = "application/vnd.cncf.flux.content.v1.tar+gzip"

ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_SOURCE = "org.opencontainers.image.source"
ANNOTATION_REVISION = "org.opencontainers.image.revision"

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# go-containerregistry's empty image records one history entry with Go's zero time.
_GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix and whole seconds, as Flux writes it."""
    if moment.tzinfo is None:
        raise ArtifactError("the artifact creation time must be timezone-aware")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    """The OCI descriptor of a blob."""
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data)}


@dataclass(frozen=True)
class Image:
    """An OCI image manifest and the blobs it references, keyed by digest."""

    manifest: bytes
    blobs: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """The manifest digest: the name of this image in every store."""
        return sha256_digest(self.manifest)

    @property
    def document(self) -> dict[str, Any]:
        """The parsed manifest."""
        return parse_manifest(self.manifest)

    @property
    def media_type(self) -> str:
        """The manifest's own media type (what a registry needs as Content-Type)."""
        return str(self.document.get("mediaType", OCI_MANIFEST))

    def descriptors(self) -> list[dict[str, Any]]:
        """Config first, then the layers: every blob the manifest references."""
        return referenced_blobs(self.document)

    def check_complete(self) -> None:
        """Raise ArtifactError unless every referenced blob is present and matches its digest."""
        for desc in self.descriptors():
            data = self.blobs.get(desc["digest"])
            if data is None:
                raise ArtifactError(f"image {self.digest} lacks blob {desc['digest']}")
            verify_digest(data, desc["digest"])


def parse_manifest(manifest: bytes) -> dict[str, Any]:
    """Parse manifest bytes into a dict, with a readable error for garbage."""
    try:
        document = json.loads(manifest)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"manifest is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ArtifactError("manifest is not a JSON object")
    return document


def referenced_blobs(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The config and layer descriptors of an image manifest, validated."""
    if document.get("schemaVersion") != 2:
        raise ArtifactError("manifest schemaVersion is not 2")
    if document.get("mediaType", OCI_MANIFEST) not in (OCI_MANIFEST, DOCKER_MANIFEST):
        raise ArtifactError(f"not an image manifest: {document.get('mediaType')}")
    config = document.get("config")
    layers = document.get("layers")
    if not isinstance(config, dict) or not isinstance(layers, list):
        raise ArtifactError("manifest lacks a config descriptor or a layers list")
    result: list[dict[str, Any]] = []
    for desc in [config, *layers]:
        if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
            raise ArtifactError("manifest has a descriptor without a digest")
        check_digest(desc["digest"])
        result.append(desc)
    return result


def image_manifest(
    config_media_type: str,
    config: bytes,
    layers: list[tuple[str, bytes, Mapping[str, str]]],
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """Canonical bytes of an OCI image manifest over ``config`` and ``layers``.

    Each layer is (media type, blob, layer annotations).
    """
    layer_descriptors = []
    for media_type, data, layer_annotations in layers:
        desc = descriptor(media_type, data)
        if layer_annotations:
            desc["annotations"] = dict(layer_annotations)
        layer_descriptors.append(desc)
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config_media_type, config),
        "layers": layer_descriptors,
    }
    if annotations:
        document["annotations"] = dict(annotations)
    return canonical_json(document)


@dataclass(frozen=True)
class Artifact:
    """A Flux OCI artifact: manifest, config and the one content layer, as exact bytes."""

    manifest: bytes
    config: bytes
    layer: bytes

    def __post_init__(self) -> None:
        # Validate eagerly so an Artifact in hand is always a consistent Flux artifact.
        document = parse_manifest(self.manifest)
        blobs = referenced_blobs(document)
        if len(blobs) != 2:
            raise ArtifactError("a Flux artifact has exactly one layer")
        config_desc, layer_desc = blobs
        if config_desc.get("mediaType") != FLUX_CONFIG:
            raise ArtifactError(f"config media type is {config_desc.get('mediaType')}")
        if layer_desc.get("mediaType") != FLUX_CONTENT:
            raise ArtifactError(f"layer media type is {layer_desc.get('mediaType')}")
        verify_digest(self.config, config_desc["digest"])
        verify_digest(self.layer, layer_desc["digest"])

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the manifest: what Flux pins and what signatures cover."""
        return sha256_digest(self.manifest)

    @property
    def annotations(self) -> dict[str, str]:
        """The manifest annotations (Flux copies them into ``status.artifact.metadata``)."""
        return dict(parse_manifest(self.manifest).get("annotations") or {})

    @property
    def revision(self) -> str | None:
        """The ``org.opencontainers.image.revision`` annotation, if set."""
        return self.annotations.get(ANNOTATION_REVISION)

    @property
    def image(self) -> Image:
        """This artifact as a generic image, for stores."""
        return Image(
            manifest=self.manifest,
            blobs={sha256_digest(self.config): self.config, sha256_digest(self.layer): self.layer},
        )

    def files(self) -> dict[str, bytes]:
        """The packed files, ``{relative_path: content}``."""
        return tarball.unpack(self.layer)

    @classmethod
    def from_image(cls, image: Image) -> Artifact:
        """Interpret a pulled image as a Flux artifact (validating media types and digests)."""
        blobs = referenced_blobs(image.document)
        missing = [d["digest"] for d in blobs if d["digest"] not in image.blobs]
        if missing:
            raise ArtifactError(f"image {image.digest} lacks blobs {missing}")
        if len(blobs) != 2:
            raise ArtifactError(f"image {image.digest} is not a Flux artifact (one layer)")
        return cls(
            manifest=image.manifest,
            config=image.blobs[blobs[0]["digest"]],
            layer=image.blobs[blobs[1]["digest"]],
        )


def build_artifact(
    files: Mapping[str, bytes],
    *,
    source: str,
    revision: str,
    created: dt.datetime = EPOCH,
    annotations: Mapping[str, str] | None = None,
) -> Artifact:
    """Pack ``files`` into a Flux OCI artifact.

    ``source`` and ``revision`` become the ``org.opencontainers.image.source`` and
    ``…revision`` annotations (Flux suggests ``<branch|tag>@sha1:<commit>`` for the revision);
    ``created`` defaults to the Unix epoch like ``flux push artifact --reproducible``. Extra
    ``annotations`` may not override those three.
    """
    extra = dict(annotations or {})
    reserved = {ANNOTATION_CREATED, ANNOTATION_SOURCE, ANNOTATION_REVISION} & extra.keys()
    if reserved:
        raise ArtifactError(f"annotations {sorted(reserved)} are set by fjord itself")
    layer, tar = tarball.pack(files)
    created_text = rfc3339(created)
    config = canonical_json(
        {
            "architecture": "",
            "config": {},
            "created": created_text,
            "history": [{"created": _GO_ZERO_TIME}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(tar)]},
        }
    )
    manifest = image_manifest(
        FLUX_CONFIG,
        config,
        [(FLUX_CONTENT, layer, {})],
        {
            **extra,
            ANNOTATION_CREATED: created_text,
            ANNOTATION_SOURCE: source,
            ANNOTATION_REVISION: revision,
        },
    )
    return Artifact(manifest=manifest, config=config, layer=layer)
