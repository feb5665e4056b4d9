"""The emulator's own signing key: it signs access tokens and is published at the JWKS URI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt

from fjord.maskinporten.grant import private_key
from fjord.maskinporten.keys import generate_jwk, public_jwk

ACCESS_TOKEN_ALG = "RS256"  # noqa: S105  (an algorithm name)


class SigningKey:
    """An RSA key pair with a kid; ``sign`` for tokens, ``verify`` for admin calls."""

    def __init__(self, jwk: Mapping[str, Any]) -> None:
        self.jwk = dict(jwk)
        self.kid = str(jwk["kid"])
        self._private = private_key(jwk)
        self._public = self._private.public_key()

    @classmethod
    def from_config(cls, jwk: Mapping[str, Any] | None) -> SigningKey:
        return cls(jwk if jwk is not None else generate_jwk(kid="fjord-emulator-1"))

    def public_jwks(self) -> dict[str, list[dict[str, Any]]]:
        return {"keys": [public_jwk(self.jwk)]}

    def sign(self, claims: Mapping[str, Any]) -> str:
        return jwt.encode(dict(claims), self._private, ACCESS_TOKEN_ALG, headers={"kid": self.kid})

    def verify(self, token: str) -> dict[str, Any]:
        """Check the signature only; the caller checks ``iss`` and ``exp`` on its own clock."""
        claims: dict[str, Any] = jwt.decode(
            token,
            self._public,
            algorithms=[ACCESS_TOKEN_ALG],
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
            },
        )
        return claims
