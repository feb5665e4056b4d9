"""The one definition of the Maskinporten Secret that the operator writes and apps read.

A Secret holds the settings twice, so apps can use whichever suits them:

- one key per value, usable directly as environment variables (``envFrom``): ``MASKINPORTEN_*``;
- ``maskinporten-settings.json``: everything as one JSON document, shaped like Altinn's
  ``{"MaskinportenSettings": {...}}`` so Altinn's app library can read it too.

When both are present the JSON document wins (it is written in the same update, so they agree).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fjord.maskinporten.errors import SettingsError
from fjord.maskinporten.keys import KID_PATTERN, is_private

CLIENT_ID = "MASKINPORTEN_CLIENT_ID"
JWK = "MASKINPORTEN_JWK"
KID = "MASKINPORTEN_KID"
SCOPES = "MASKINPORTEN_SCOPES"
ISSUER = "MASKINPORTEN_ISSUER"
TOKEN_ENDPOINT = "MASKINPORTEN_TOKEN_ENDPOINT"  # noqa: S105  (a key name)
WELL_KNOWN_URL = "MASKINPORTEN_WELL_KNOWN_URL"
SETTINGS_JSON = "maskinporten-settings.json"

ENV_KEYS = (CLIENT_ID, JWK, KID, SCOPES, ISSUER, TOKEN_ENDPOINT, WELL_KNOWN_URL)
SECRET_KEYS = (*ENV_KEYS, SETTINGS_JSON)
_ENVELOPE = "MaskinportenSettings"


class MaskinportenSettings(BaseModel):
    """Everything an app needs to get Maskinporten tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_id: str = Field(min_length=1)
    jwk: dict[str, Any]  # the active private RSA JWK, used to sign grants
    kid: str  # kid of ``jwk``; repeated so env-only apps need not parse the JWK
    scopes: tuple[str, ...] = ()  # the scopes registered on the client
    issuer: str  # also the grant's ``aud``; always ends with "/"
    token_endpoint: str
    well_known_url: str
    # Every private key still registered (active first). Only in the JSON document; apps sign
    # with ``jwk``, the operator keeps the rest to know what it registered.
    jwks: tuple[dict[str, Any], ...] = ()

    @classmethod
    def for_issuer(
        cls,
        *,
        issuer: str,
        client_id: str,
        jwk: Mapping[str, Any],
        scopes: tuple[str, ...] | list[str] = (),
        jwks: tuple[Mapping[str, Any], ...] | list[Mapping[str, Any]] = (),
    ) -> MaskinportenSettings:
        """Settings whose endpoints follow Maskinporten's layout under ``issuer``."""
        issuer = issuer if issuer.endswith("/") else issuer + "/"
        return cls(
            client_id=client_id,
            jwk=dict(jwk),
            kid=str(jwk.get("kid", "")),
            scopes=tuple(scopes),
            issuer=issuer,
            token_endpoint=issuer + "token",
            well_known_url=issuer + ".well-known/oauth-authorization-server",
            jwks=tuple(dict(k) for k in jwks),
        )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not self.issuer.endswith("/"):
            raise ValueError("issuer must end with '/' (it is the grant's aud, compared exactly)")
        if self.jwk.get("kty") != "RSA" or not is_private(self.jwk):
            raise ValueError("jwk must be a private RSA JWK")
        if not KID_PATTERN.match(self.kid):
            raise ValueError("kid must be alphanumerics plus '._-'")
        if self.jwk.get("kid", self.kid) != self.kid:
            raise ValueError("kid does not match the jwk's kid")
        if any(not s or " " in s for s in self.scopes) or len(set(self.scopes)) != len(self.scopes):
            raise ValueError("scopes must be unique and contain no spaces")
        if self.jwk not in self.jwks:
            # The active key is always part of the set, first. (Frozen model: set it directly.)
            object.__setattr__(self, "jwks", (self.jwk, *self.jwks))
        return self

    def all_keys(self) -> tuple[dict[str, Any], ...]:
        """The registered private keys, active first."""
        return self.jwks

    def to_secret_data(self) -> dict[str, str]:
        """The Secret's ``stringData``: one key per env var plus the JSON document."""
        document = {
            _ENVELOPE: {
                "ClientId": self.client_id,
                "Authority": self.issuer,
                "Jwk": self.jwk,
                "Jwks": {"keys": list(self.all_keys())},
                "Kid": self.kid,
                "Scopes": " ".join(self.scopes),
                "TokenEndpoint": self.token_endpoint,
                "WellKnownUrl": self.well_known_url,
            }
        }
        return {
            CLIENT_ID: self.client_id,
            JWK: json.dumps(self.jwk, sort_keys=True),
            KID: self.kid,
            SCOPES: " ".join(self.scopes),
            ISSUER: self.issuer,
            TOKEN_ENDPOINT: self.token_endpoint,
            WELL_KNOWN_URL: self.well_known_url,
            SETTINGS_JSON: json.dumps(document, sort_keys=True),
        }

    @classmethod
    def from_secret_data(cls, data: Mapping[str, str | bytes]) -> MaskinportenSettings:
        """Read decoded Secret data (``stringData``, or ``data`` after base64 decoding)."""
        text = {k: v.decode() if isinstance(v, bytes) else v for k, v in data.items()}
        try:
            if SETTINGS_JSON in text:
                return cls._from_document(json.loads(text[SETTINGS_JSON]))
            missing = [k for k in ENV_KEYS if k not in text]
            if missing:
                raise SettingsError(f"Maskinporten settings lack {', '.join(missing)}")
            return cls(
                client_id=text[CLIENT_ID],
                jwk=_json_object(text[JWK]),
                kid=text[KID],
                scopes=tuple(text[SCOPES].split()),
                issuer=text[ISSUER],
                token_endpoint=text[TOKEN_ENDPOINT],
                well_known_url=text[WELL_KNOWN_URL],
            )
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            raise SettingsError(f"invalid Maskinporten settings: {exc}") from exc

    @classmethod
    def _from_document(cls, document: Any) -> MaskinportenSettings:
        body = document.get(_ENVELOPE) if isinstance(document, dict) else None
        if not isinstance(body, dict):
            raise ValueError(f"{SETTINGS_JSON} must be {{{_ENVELOPE!r}: {{...}}}}")
        keys = body.get("Jwks", {}).get("keys", [])
        return cls(
            client_id=body["ClientId"],
            jwk=body["Jwk"],
            kid=body["Kid"],
            scopes=tuple(str(body.get("Scopes", "")).split()),
            issuer=body["Authority"],
            token_endpoint=body["TokenEndpoint"],
            well_known_url=body["WellKnownUrl"],
            jwks=tuple(keys),
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MaskinportenSettings:
        """Read the ``MASKINPORTEN_*`` environment variables."""
        env = os.environ if environ is None else environ
        return cls.from_secret_data({k: env[k] for k in ENV_KEYS if k in env})

    @classmethod
    def from_directory(cls, path: str | os.PathLike[str]) -> MaskinportenSettings:
        """Read a mounted Secret (one file per key; follows kubelet's ``..data`` symlinks)."""
        return cls.from_secret_data(read_secret_directory(path))


def read_secret_directory(path: str | os.PathLike[str]) -> dict[str, str]:
    """The Maskinporten keys present in a mounted Secret directory."""
    root = Path(path)
    if not root.is_dir():
        raise SettingsError(f"secret directory {root} does not exist")
    data: dict[str, str] = {}
    for key in SECRET_KEYS:
        file = root / key
        try:
            data[key] = file.read_text()
        except FileNotFoundError:
            continue
    return data


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value
