"""The JWT-bearer grant (RFC 7523) a client signs to ask Maskinporten for a token."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import RSAAlgorithm

# Maskinporten refuses exp − iat > 120 s; a shorter life leaves room for clock skew.
DEFAULT_GRANT_LIFETIME = 60


def private_key(jwk: Mapping[str, Any]) -> RSAPrivateKey:
    """Load a private RSA JWK for signing."""
    key = RSAAlgorithm.from_jwk(json.dumps(dict(jwk)))
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("the JWK is not a private RSA key")
    return key


def build_grant(
    *,
    client_id: str,
    key: RSAPrivateKey,
    kid: str,
    audience: str,
    scopes: Iterable[str],
    now: float,
    lifetime: int = DEFAULT_GRANT_LIFETIME,
    alg: str = "RS256",
    jti: str | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """A signed grant with a fresh ``jti`` (Maskinporten rejects a reused grant, MP-012)."""
    issued = int(now)
    claims: dict[str, Any] = {
        "aud": audience,
        "iss": client_id,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": jti or str(uuid.uuid4()),
        "scope": " ".join(scopes),
    }
    if extra_claims:
        claims.update(extra_claims)
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})
