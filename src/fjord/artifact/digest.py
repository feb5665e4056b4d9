"""Content digests (``sha256:<hex>``) and the canonical JSON whose bytes they are taken over."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from fjord.artifact.errors import ArtifactError, DigestMismatchError

_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


def sha256_digest(data: bytes) -> str:
    """The OCI digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_digest(value: str) -> bool:
    """Whether ``value`` is a well-formed sha256 digest (the only algorithm fjord writes)."""
    return _DIGEST_RE.fullmatch(value) is not None


def check_digest(value: str) -> str:
    """Return ``value`` if it is a well-formed sha256 digest, else raise ArtifactError."""
    if not is_digest(value):
        raise ArtifactError(f"not a sha256 digest: {value!r}")
    return value


def verify_digest(data: bytes, expected: str) -> bytes:
    """Return ``data`` if it hashes to ``expected``; raise DigestMismatchError otherwise."""
    actual = sha256_digest(data)
    if actual != expected:
        raise DigestMismatchError(f"content digest {actual} does not match expected {expected}")
    return data


def canonical_json(value: Any) -> bytes:
    """Compact JSON with sorted keys, UTF-8 encoded.

    Digests are taken over these bytes, so the encoding must never depend on dict insertion
    order or on whitespace settings. ``ensure_ascii=False`` keeps non-ASCII text as plain UTF-8.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
