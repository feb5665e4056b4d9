"""Shared constants and helpers of the Maskinporten integration tests (imported by conftest)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fjord.maskinporten.emulator import ScopeDefinition
from fjord.maskinporten.registration import RegisteredClient
from fjord.maskinporten.secret_format import MaskinportenSettings

SUPPLIER_ID = "fjord-supplier"
SUPPLIER_ORGNO = "991825827"
APP_ORGNO = "310000001"
READ, WRITE = "fjord:test.read", "fjord:test.write"
RESTRICTED = "fjord:restricted"  # only org 111111111 has access
IDPORTEN_ONLY = "fjord:login"  # only for integration type idporten
SCOPES = (
    ScopeDefinition(name=READ),
    ScopeDefinition(name=WRITE),
    ScopeDefinition(name="fjord:other"),
    ScopeDefinition(name=RESTRICTED, accessible_for_all=False, consumer_orgnos=("111111111",)),
    ScopeDefinition(name=IDPORTEN_ONLY, integration_types=("idporten",)),
)


@dataclass
class Sleeps:
    """Records backoff sleeps instead of sleeping."""

    calls: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@dataclass(frozen=True)
class AppClient:
    """A registered Maskinporten client and its private key."""

    client: RegisteredClient
    key: dict[str, Any]
    settings: MaskinportenSettings


RegisterApp = Callable[..., Any]
