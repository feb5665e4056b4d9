"""Configuration of an emulator instance: issuer, the bootstrap supplier, scopes and faults."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fjord.maskinporten.keys import public_jwks

# The self-service API's scopes (reference 2.1). Only the bootstrap supplier holds them: they
# cannot be registered on a client through the API.
DCR_READ = "idporten:dcr.read"
DCR_MODIFY = "idporten:dcr.modify"
DCR_WRITE = "idporten:dcr.write"
DCR_ONBEHALFOF_WRITE = "idporten:dcr/onbehalfof:write"
DCR_SUPPLIER = "idporten:dcr.supplier"
DCR_ALTINN = "idporten:dcr.altinn"
ADMIN_SCOPES = (DCR_READ, DCR_MODIFY, DCR_WRITE, DCR_ONBEHALFOF_WRITE, DCR_SUPPLIER, DCR_ALTINN)

KEY_LIFETIME_SECONDS = 365 * 24 * 3600  # a posted key lives at most one year
IAT_SKEW_SECONDS = 10
MAX_GRANT_LIFETIME_SECONDS = 120


@dataclass(frozen=True)
class SupplierClient:
    """The admin client registered out of band (as in Samarbeidsportalen), given its public keys."""

    client_id: str
    orgno: str
    jwks: Mapping[str, Any]  # {"keys": [public JWKs]}
    scopes: tuple[str, ...] = ADMIN_SCOPES
    client_name: str = "fjord supplier"

    @classmethod
    def from_jwks_file(
        cls, path: str | Path, *, client_id: str, orgno: str, scopes: tuple[str, ...] = ADMIN_SCOPES
    ) -> SupplierClient:
        """Read a JWKS (or a single JWK) file; private members are dropped."""
        data = json.loads(Path(path).read_text())
        keys = data["keys"] if isinstance(data, dict) and "keys" in data else [data]
        return cls(client_id=client_id, orgno=orgno, jwks=public_jwks(keys), scopes=scopes)


@dataclass(frozen=True)
class ScopeDefinition:
    """A scope that exists in the emulated Maskinporten, and who may use it."""

    name: str
    integration_types: tuple[str, ...] = ("maskinporten",)
    accessible_for_all: bool = True
    consumer_orgnos: tuple[str, ...] = ()  # orgs granted access when not accessible for all

    def accessible_by(self, orgno: str) -> bool:
        return self.accessible_for_all or orgno in self.consumer_orgnos


class FaultConfig(BaseModel):
    """Faults injected into non-``/test`` requests, each at a rate in [0, 1]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_seconds: float = Field(default=0.0, ge=0, le=60)
    latency_rate: float = Field(default=0.0, ge=0, le=1)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    error_status: int = Field(default=503, ge=500, le=599)
    rate_limit_rate: float = Field(default=0.0, ge=0, le=1)
    retry_after: int = Field(default=1, ge=0)
    max_faults: int | None = Field(default=None, ge=0)  # stop failing after this many 5xx/429
    path_prefixes: tuple[str, ...] = ()  # empty: every path except /test/


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything fixed when an emulator starts (faults and the clock can change later)."""

    issuer: str  # the grant's aud and the tokens' iss; ends with "/"
    supplier: SupplierClient
    base_url: str | None = None  # where endpoints are served, if not at the issuer
    scopes: tuple[ScopeDefinition, ...] = ()
    allow_unknown_scopes: bool = False  # any scope "exists" (handy for ad-hoc runs)
    faults: FaultConfig = field(default_factory=FaultConfig)
    seed: int | None = None  # makes ids, correlation ids and fault decisions reproducible
    signing_jwk: Mapping[str, Any] | None = (
        None  # the emulator's own private key; generated if None
    )

    def __post_init__(self) -> None:
        if not self.issuer.endswith("/"):
            raise ValueError("issuer must end with '/'")

    @property
    def endpoint_base(self) -> str:
        base = self.base_url or self.issuer
        return base if base.endswith("/") else base + "/"
