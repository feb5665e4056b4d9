"""Fixtures for the Maskinporten tests: one real emulator over loopback HTTP, reset per test.

The emulator's clock is frozen at the start of every test, and the token/admin clients read the
same clock, so time-based rules are exercised by moving the clock instead of sleeping. Backoff
sleeps are recorded rather than slept.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2
import pytest
from mp_support import (
    APP_ORGNO,
    READ,
    SCOPES,
    SUPPLIER_ID,
    SUPPLIER_ORGNO,
    WRITE,
    AppClient,
    RegisterApp,
    Sleeps,
)

from fjord.maskinporten.admin import SelfServiceClient
from fjord.maskinporten.emulator import (
    ADMIN_SCOPES,
    EmulatorServer,
    SupplierClient,
)
from fjord.maskinporten.keys import generate_jwk, public_jwks
from fjord.maskinporten.registration import ClientRegistration
from fjord.maskinporten.secret_format import MaskinportenSettings
from fjord.retry import RetryPolicy


@pytest.fixture(scope="session")
def supplier_key() -> dict[str, Any]:
    return generate_jwk("supplier-key-1")


@pytest.fixture(scope="session")
def emulator_server(supplier_key: dict[str, Any]) -> Iterator[EmulatorServer]:
    supplier = SupplierClient(
        client_id=SUPPLIER_ID, orgno=SUPPLIER_ORGNO, jwks=public_jwks([supplier_key])
    )
    with EmulatorServer(supplier=supplier, scopes=SCOPES, seed=1234) as server:
        yield server


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> EmulatorServer:
    """The shared emulator, reset to its start state with the clock frozen at wall time."""
    state = emulator_server.state
    state.clock.reset()
    state.reset()
    state.clock.freeze(float(int(time.time())))
    return emulator_server


@pytest.fixture
def now(emulator: EmulatorServer) -> Callable[[], float]:
    """The emulator's clock, shared with the clients under test."""
    return emulator.state.clock.now


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def retry() -> RetryPolicy:
    return RetryPolicy(attempts=4, initial_delay=0.5, multiplier=2.0, jitter=0.0)


@pytest.fixture
def supplier_settings(
    emulator: EmulatorServer, supplier_key: dict[str, Any]
) -> MaskinportenSettings:
    return MaskinportenSettings.for_issuer(
        issuer=emulator.issuer, client_id=SUPPLIER_ID, jwk=supplier_key, scopes=ADMIN_SCOPES[:5]
    )


@pytest.fixture
async def admin(
    emulator: EmulatorServer,
    supplier_settings: MaskinportenSettings,
    now: Callable[[], float],
    sleeps: Sleeps,
    retry: RetryPolicy,
) -> AsyncIterator[SelfServiceClient]:
    async with SelfServiceClient(
        api_base_url=emulator.url, supplier=supplier_settings, clock=now, sleep=sleeps, retry=retry
    ) as client:
        yield client


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
def register_app(admin: SelfServiceClient, emulator: EmulatorServer) -> RegisterApp:
    """Register a Maskinporten client with one key; returns an ``AppClient``."""

    async def register(
        scopes: tuple[str, ...] = (READ, WRITE), name: str = "app", kid: str | None = None
    ) -> AppClient:
        registered = await admin.create_client(
            ClientRegistration.maskinporten(
                client_name=name, client_orgno=APP_ORGNO, scopes=list(scopes)
            )
        )
        key = generate_jwk(kid)
        await admin.replace_jwks(registered.client_id, [key])
        settings = MaskinportenSettings.for_issuer(
            issuer=emulator.issuer, client_id=registered.client_id, jwk=key, scopes=scopes
        )
        return AppClient(registered, key, settings)

    return register
