"""One retry policy (fjord.retry) in the registry, Digdir admin and token clients.

Against the real emulator's fault injection: injected 5xx and 429 (with Retry-After) and added
latency. The registry client talks to the emulator too (``/v2/…`` is not a route there, so once
the faults stop it answers 404, which the registry client reads as "no such blob"): what is
tested is how each client treats a fault, not what the server is. Waits are recorded rather
than slept and move the emulator's clock, which the clients read, so deadlines are exact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx2
import pytest
from mp_support import APP_ORGNO, READ, AppClient, RegisterApp

from fjord.maskinporten.admin import SelfServiceClient
from fjord.maskinporten.client import MaskinportenClient
from fjord.maskinporten.emulator import EmulatorServer, FaultConfig
from fjord.maskinporten.errors import AdminApiError, TokenError, UnavailableError
from fjord.maskinporten.registration import ClientRegistration
from fjord.maskinporten.secret_format import MaskinportenSettings
from fjord.retry import RetryPolicy
from fjord.stores import RegistryError, RegistryStore

DIGEST = "sha256:" + "ab" * 32
POLICY = RetryPolicy(attempts=4, deadline=60.0, initial_delay=0.5, multiplier=2.0, jitter=0.0)


@dataclass
class Waits:
    """Records each wait and moves the emulator's clock by it instead of sleeping."""

    emulator: EmulatorServer
    calls: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.emulator.state.clock.advance(seconds)


@pytest.fixture
def waits(emulator: EmulatorServer) -> Waits:
    return Waits(emulator)


def faults(emulator: EmulatorServer, prefix: str, **config: object) -> None:
    emulator.state.set_faults(FaultConfig(path_prefixes=(prefix,), **config))  # type: ignore[arg-type]


def faults_served(emulator: EmulatorServer) -> int:
    return int(emulator.state.dump()["faults_injected"].get("failures", 0))


Call = Callable[[], Awaitable[object]]


@pytest.fixture
async def registry(emulator: EmulatorServer, waits: Waits) -> AsyncIterator[RegistryStore]:
    clock = emulator.state.clock.now
    async with RegistryStore(emulator.url, retry=POLICY, sleep=waits, clock=clock) as store:
        yield store


@pytest.fixture
async def app(register_app: RegisterApp) -> AppClient:
    app: AppClient = await register_app()
    return app


@pytest.fixture
async def token_client(
    app: AppClient, emulator: EmulatorServer, waits: Waits
) -> AsyncIterator[MaskinportenClient]:
    async with MaskinportenClient(
        app.settings, retry=POLICY, sleep=waits, clock=emulator.state.clock.now
    ) as client:
        yield client


@pytest.fixture
async def admin_client(
    emulator: EmulatorServer, supplier_settings: MaskinportenSettings, waits: Waits
) -> AsyncIterator[SelfServiceClient]:
    async with SelfServiceClient(
        api_base_url=emulator.url,
        supplier=supplier_settings,
        retry=POLICY,
        sleep=waits,
        clock=emulator.state.clock.now,
    ) as client:
        await client.list_clients()  # the supplier token, before any fault
        yield client


def calls(
    registry: RegistryStore, token_client: MaskinportenClient, admin_client: SelfServiceClient
) -> dict[str, tuple[str, Call]]:
    """Per client: the path its faults go to, and one idempotent call."""

    async def new_token() -> object:
        token_client.invalidate()  # a cached token would need no request
        return await token_client.get_token()

    return {
        "registry": ("/v2/", lambda: registry.blob_exists("ttd/apps/a", DIGEST)),
        "token": ("/token", new_token),
        "admin": ("/clients", admin_client.list_clients),
    }


CLIENTS = ["registry", "token", "admin"]


@pytest.mark.parametrize("client", CLIENTS)
async def test_retry_after_then_backoff_in_every_client(
    client: str,
    emulator: EmulatorServer,
    waits: Waits,
    registry: RegistryStore,
    token_client: MaskinportenClient,
    admin_client: SelfServiceClient,
) -> None:
    prefix, call = calls(registry, token_client, admin_client)[client]
    faults(emulator, prefix, rate_limit_rate=1.0, retry_after=7, max_faults=1)
    await call()
    faults(emulator, prefix, error_rate=1.0, error_status=502, max_faults=2)
    await call()
    assert waits.calls == [7.0, 0.5, 1.0]  # the server's 7 s beat our 0.5 s; then backoff


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("status", [500, 503, 504])
async def test_the_same_statuses_are_transient_everywhere(
    client: str,
    status: int,
    emulator: EmulatorServer,
    waits: Waits,
    registry: RegistryStore,
    token_client: MaskinportenClient,
    admin_client: SelfServiceClient,
) -> None:
    prefix, call = calls(registry, token_client, admin_client)[client]
    faults(emulator, prefix, error_rate=1.0, error_status=status, max_faults=3)
    await call()
    assert waits.calls == [0.5, 1.0, 2.0]
    assert faults_served(emulator) == 3


@pytest.mark.parametrize("client", CLIENTS)
async def test_501_is_not_transient_anywhere(
    client: str,
    emulator: EmulatorServer,
    waits: Waits,
    registry: RegistryStore,
    token_client: MaskinportenClient,
    admin_client: SelfServiceClient,
) -> None:
    prefix, call = calls(registry, token_client, admin_client)[client]
    faults(emulator, prefix, error_rate=1.0, error_status=501)
    with pytest.raises((RegistryError, TokenError, AdminApiError)) as caught:
        await call()
    assert getattr(caught.value, "status", None) == 501, caught.value
    assert waits.calls == []
    assert faults_served(emulator) == 1


@pytest.mark.parametrize("client", CLIENTS)
async def test_the_deadline_ends_the_retries_in_every_client(
    client: str,
    emulator: EmulatorServer,
    waits: Waits,
    app: AppClient,
    supplier_settings: MaskinportenSettings,
) -> None:
    policy = RetryPolicy(attempts=10, deadline=2.0, initial_delay=0.5, jitter=0.0)
    now = emulator.state.clock.now
    async with (
        RegistryStore(emulator.url, retry=policy, sleep=waits, clock=now) as registry,
        MaskinportenClient(app.settings, retry=policy, sleep=waits, clock=now) as token_client,
        SelfServiceClient(
            api_base_url=emulator.url,
            supplier=supplier_settings,
            retry=policy,
            sleep=waits,
            clock=now,
        ) as admin_client,
    ):
        await admin_client.list_clients()
        prefix, call = calls(registry, token_client, admin_client)[client]
        faults(emulator, prefix, error_rate=1.0)
        with pytest.raises((RegistryError, UnavailableError)) as caught:
            await call()
    assert getattr(caught.value, "status", None) == 503
    # 0.5 + 1.0 waited; the next 2.0 s would end past the 2 s deadline, so the third answer
    # stands.
    assert waits.calls == [0.5, 1.0]
    assert faults_served(emulator) == 3


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_retry_after_beyond_the_deadline_is_not_waited_for(
    client: str,
    emulator: EmulatorServer,
    waits: Waits,
    registry: RegistryStore,
    token_client: MaskinportenClient,
    admin_client: SelfServiceClient,
) -> None:
    prefix, call = calls(registry, token_client, admin_client)[client]
    faults(emulator, prefix, rate_limit_rate=1.0, retry_after=3600)
    with pytest.raises((RegistryError, UnavailableError)) as caught:
        await call()
    assert getattr(caught.value, "status", None) == 429
    assert waits.calls == []


async def test_timeouts_are_retried_only_where_repeating_is_safe(
    emulator: EmulatorServer, supplier_settings: MaskinportenSettings, waits: Waits
) -> None:
    async with (
        httpx2.AsyncClient(timeout=0.3) as http,
        SelfServiceClient(
            api_base_url=emulator.url,
            supplier=supplier_settings,
            http=http,
            retry=POLICY,
            sleep=waits,
            clock=emulator.state.clock.now,
        ) as admin,
    ):
        await admin.list_clients()
        faults(emulator, "/clients", latency_rate=1.0, latency_seconds=1.0)
        with pytest.raises(UnavailableError, match="ReadTimeout"):
            await admin.list_clients()  # idempotent: every attempt timed out
        assert waits.calls == [0.5, 1.0, 2.0]
        waits.calls.clear()
        registration = ClientRegistration.maskinporten(
            client_name="c", client_orgno=APP_ORGNO, scopes=[READ]
        )
        with pytest.raises(UnavailableError, match="ReadTimeout"):
            await admin.create_client(registration)  # may have been created: not repeated
        assert waits.calls == []
