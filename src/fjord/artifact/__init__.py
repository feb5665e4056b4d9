"""Deterministic packing, the Flux OCI artifact layout, digests and cosign-style signatures."""

from __future__ import annotations

from fjord.artifact.digest import canonical_json, is_digest, sha256_digest, verify_digest
from fjord.artifact.errors import ArtifactError, DigestMismatchError, VerificationError
from fjord.artifact.oci import (
    ANNOTATION_CREATED,
    ANNOTATION_REVISION,
    ANNOTATION_SOURCE,
    EPOCH,
    FLUX_CONFIG,
    FLUX_CONTENT,
    OCI_MANIFEST,
    Artifact,
    Image,
    build_artifact,
)
from fjord.artifact.signing import (
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING,
    KeyPair,
    PublicKey,
    VerifiedSignature,
    generate_key_pair,
    load_private_key,
    load_public_key,
    signature_image,
    signature_tag,
    simple_signing_payload,
    verify_signature_image,
)

__all__ = [
    "ANNOTATION_CREATED",
    "ANNOTATION_REVISION",
    "ANNOTATION_SOURCE",
    "EPOCH",
    "FLUX_CONFIG",
    "FLUX_CONTENT",
    "OCI_MANIFEST",
    "SIGNATURE_ANNOTATION",
    "SIMPLE_SIGNING",
    "Artifact",
    "ArtifactError",
    "DigestMismatchError",
    "Image",
    "KeyPair",
    "PublicKey",
    "VerificationError",
    "VerifiedSignature",
    "build_artifact",
    "canonical_json",
    "generate_key_pair",
    "is_digest",
    "load_private_key",
    "load_public_key",
    "sha256_digest",
    "signature_image",
    "signature_tag",
    "simple_signing_payload",
    "verify_digest",
    "verify_signature_image",
]
