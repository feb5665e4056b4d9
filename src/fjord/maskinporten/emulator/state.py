"""The emulator's in-memory state, guarded by one lock.

Request handlers run on uvicorn's event loop while tests may inspect the state from another
thread, so every read and write goes through ``with state.lock``. No critical section awaits.
"""

from __future__ import annotations

import random
import secrets
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fjord.maskinporten.emulator.clock import EmulatorClock
from fjord.maskinporten.emulator.config import (
    ADMIN_SCOPES,
    KEY_LIFETIME_SECONDS,
    EmulatorConfig,
    FaultConfig,
    ScopeDefinition,
)
from fjord.maskinporten.emulator.signing import SigningKey
from fjord.maskinporten.keys import thumbprint
from fjord.maskinporten.registration import JWT_BEARER


@dataclass
class StoredKey:
    """A registered public key and when it stops being accepted."""

    jwk: dict[str, Any]
    thumbprint: str
    created: float
    posted: float
    expires: float

    @property
    def kid(self) -> str:
        return str(self.jwk["kid"])

    def public_view(self) -> dict[str, Any]:
        return {
            **self.jwk,
            "exp": int(self.expires),
            "created": iso(self.created),
            "last_updated": iso(self.posted),
        }


@dataclass
class StoredClient:
    """A registered client: the client object as the API shows it, plus keys and secret."""

    data: dict[str, Any]  # RegisteredClient fields, minus client_secret
    keys: list[StoredKey] = field(default_factory=list)
    jwks_created: float | None = None
    jwks_updated: float | None = None
    client_secret: str | None = None
    bootstrap: bool = False  # the out-of-band admin client: invisible to the API

    @property
    def client_id(self) -> str:
        return str(self.data["client_id"])

    @property
    def scopes(self) -> list[str]:
        return list(self.data.get("scopes") or [])

    def key(self, kid: str) -> StoredKey | None:
        return next((k for k in self.keys if k.kid == kid), None)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class EmulatorState:
    """Clients, keys, used grants, counters and the live fault settings of one emulator."""

    def __init__(self, config: EmulatorConfig, clock: EmulatorClock | None = None) -> None:
        self.config = config
        self.clock = clock or EmulatorClock()
        self.lock = threading.RLock()
        self.signing_key = SigningKey.from_config(config.signing_jwk)
        self._seed = config.seed
        self.reset()

    # -- lifecycle -------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything but the bootstrap supplier; restore the configured faults."""
        with self.lock:
            # Seeded on purpose: ids and fault decisions must be reproducible in tests.
            self.rng = random.Random(self._seed)  # noqa: S311
            self.clients: dict[str, StoredClient] = {}
            self.used_grants: dict[tuple[str, str], float] = {}  # (client, jti) -> forget after
            self.counters: Counter[str] = Counter()
            self.tokens_by_client: Counter[str] = Counter()
            self.faults: FaultConfig = self.config.faults
            self.faults_injected: Counter[str] = Counter()
            self.fault_rng = random.Random(self._seed)  # noqa: S311
            self.scopes: dict[str, ScopeDefinition] = {s.name: s for s in self.config.scopes}
            self._add_supplier()

    def _add_supplier(self) -> None:
        supplier = self.config.supplier
        now = self.clock.now()
        client = StoredClient(
            data={
                "client_id": supplier.client_id,
                "client_name": supplier.client_name,
                "client_orgno": supplier.orgno,
                "integration_type": "maskinporten",
                "application_type": "web",
                "token_endpoint_auth_method": "private_key_jwt",
                "grant_types": [JWT_BEARER],
                "scopes": list(supplier.scopes),
                "active": True,
                "access_token_lifetime": 120,
            },
            bootstrap=True,
        )
        self.clients[supplier.client_id] = client
        self.replace_keys(client, list(supplier.jwks.get("keys", [])), now)

    def set_faults(self, faults: FaultConfig) -> None:
        """Replace the live fault settings; the ``max_faults`` budget starts over."""
        with self.lock:
            self.faults = faults
            self.faults_injected.clear()

    # -- ids and randomness ------------------------------------------------------------------

    def new_uuid(self) -> str:
        with self.lock:
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def new_secret(self) -> str:
        # Client secrets are credentials even in an emulator: never from the seeded generator.
        return secrets.token_urlsafe(32)

    # -- keys ----------------------------------------------------------------------------------

    def replace_keys(self, client: StoredClient, keys: list[dict[str, Any]], now: float) -> None:
        """Replace a client's whole key set. Every posted key lives one year from now."""
        with self.lock:
            previous = {k.thumbprint: k for k in client.keys}
            stored = []
            for jwk in keys:
                print_ = thumbprint(jwk)
                lifetime_end = now + KEY_LIFETIME_SECONDS
                if isinstance(jwk.get("exp"), int | float):
                    lifetime_end = min(lifetime_end, float(jwk["exp"]))
                old = previous.get(print_)
                material = {
                    k: v for k, v in jwk.items() if k not in ("exp", "created", "last_updated")
                }
                stored.append(
                    StoredKey(
                        jwk=material,
                        thumbprint=print_,
                        created=old.created if old else now,
                        posted=now,
                        expires=lifetime_end,
                    )
                )
            client.keys = stored
            client.jwks_created = client.jwks_created or now
            client.jwks_updated = now

    def kid_owner(self, kid: str) -> StoredClient | None:
        with self.lock:
            return next((c for c in self.clients.values() if c.key(kid)), None)

    # -- grants --------------------------------------------------------------------------------

    def use_grant(self, client_id: str, jti: str, forget_after: float, now: float) -> bool:
        """Record a grant; False if it was used before. Entries past their life are dropped."""
        with self.lock:
            for stale in [k for k, until in self.used_grants.items() if until < now]:
                del self.used_grants[stale]
            key = (client_id, jti)
            if key in self.used_grants:
                return False
            self.used_grants[key] = forget_after
            self.counters["jti_used_total"] += 1
            return True

    # -- scopes --------------------------------------------------------------------------------

    def scope(self, name: str) -> ScopeDefinition | None:
        with self.lock:
            if name in self.scopes:
                return self.scopes[name]
        if name in ADMIN_SCOPES:
            return ScopeDefinition(name=name, accessible_for_all=False)
        if self.config.allow_unknown_scopes:
            return ScopeDefinition(name=name, integration_types=())
        return None

    def add_scope(self, scope: ScopeDefinition) -> None:
        with self.lock:
            self.scopes[scope.name] = scope

    # -- test view -----------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """Everything a test may want to assert on, as JSON."""
        with self.lock:
            return {
                "issuer": self.config.issuer,
                "clock": self.clock.describe(),
                "clients": [
                    {
                        **c.data,
                        "bootstrap": c.bootstrap,
                        "has_client_secret": c.client_secret is not None,
                        "keys": [k.public_view() for k in c.keys],
                    }
                    for c in self.clients.values()
                ],
                "scopes": sorted(self.scopes),
                "used_jti_count": len(self.used_grants),
                "counters": dict(self.counters),
                "tokens_by_client": dict(self.tokens_by_client),
                "faults": self.faults.model_dump(mode="json"),
                "faults_injected": dict(self.faults_injected),
            }
