"""Errors raised while packing, reading, signing or verifying artifacts."""

from __future__ import annotations

from fjord.errors import FjordError


class ArtifactError(FjordError):
    """Content that cannot be packed, or bytes that are not a valid Flux OCI artifact."""


class DigestMismatchError(ArtifactError):
    """Bytes whose SHA-256 differs from the digest that names them: corruption or tampering."""


class VerificationError(FjordError):
    """No signature made by a trusted key covers the artifact's manifest digest."""
