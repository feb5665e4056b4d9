"""RSA signing keys as JWKs: generation, public export and the kid rules Digdir enforces."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from jwcrypto import jwk  # type: ignore[import-untyped]

# Digdir: a kid is made of alphanumerics plus ``._-``.
KID_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
# Members that only a private RSA key has; they must never be uploaded.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512")


def new_kid() -> str:
    """A fresh, valid, globally unique kid."""
    return str(uuid.uuid4())


def generate_jwk(kid: str | None = None, *, size: int = 2048, alg: str = "RS256") -> dict[str, Any]:
    """Generate an RSA private JWK with ``kid``, ``use: sig`` and ``alg``."""
    if alg not in SIGNING_ALGORITHMS:
        raise ValueError(f"unsupported alg {alg!r}; expected one of {SIGNING_ALGORITHMS}")
    kid = kid or new_kid()
    if not KID_PATTERN.match(kid):
        raise ValueError(f"kid {kid!r} must be alphanumerics plus '._-'")
    key = jwk.JWK.generate(kty="RSA", size=size, kid=kid, use="sig", alg=alg)
    exported: dict[str, Any] = key.export_private(as_dict=True)
    return exported


def public_jwk(key: Mapping[str, Any]) -> dict[str, Any]:
    """The public half of an RSA JWK, keeping ``kid``, ``use`` and ``alg``."""
    public = {k: v for k, v in key.items() if k not in PRIVATE_MEMBERS}
    if public.get("kty") != "RSA" or "n" not in public or "e" not in public:
        raise ValueError("not an RSA JWK")
    return public


def public_jwks(keys: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """A public JWKS ``{"keys": [...]}`` for uploading to the self-service API."""
    return {"keys": [public_jwk(k) for k in keys]}


def is_private(key: Mapping[str, Any]) -> bool:
    """Whether a JWK carries private members."""
    return any(member in key for member in PRIVATE_MEMBERS)


def thumbprint(key: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint: identifies the key material regardless of kid and metadata."""
    return str(jwk.JWK(**public_jwk(key)).thumbprint())


def load_jwk(text: str) -> dict[str, Any]:
    """Parse a JWK from JSON text (a file or an environment variable)."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("a JWK must be a JSON object")
    return value
