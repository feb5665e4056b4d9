"""The token client and the self-service API client against the real emulator."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest
from mp_support import APP_ORGNO, READ, SUPPLIER_ID, WRITE, AppClient, RegisterApp, Sleeps

from fjord.maskinporten.admin import SelfServiceClient, generate_jwk, public_jwks
from fjord.maskinporten.client import MaskinportenClient
from fjord.maskinporten.emulator import EmulatorServer, FaultConfig
from fjord.maskinporten.errors import (
    AdminApiError,
    AdminNotFoundError,
    AdminValidationError,
    InvalidGrantError,
    InvalidScopeError,
    UnavailableError,
)
from fjord.maskinporten.registration import ClientRegistration
from fjord.maskinporten.secret_format import MaskinportenSettings
from fjord.retry import RetryPolicy


def issued(emulator: EmulatorServer, client_id: str) -> int:
    return int(emulator.state.dump()["tokens_by_client"].get(client_id, 0))


@pytest.fixture
async def app(register_app: RegisterApp) -> AppClient:
    app: AppClient = await register_app()
    return app


@pytest.fixture
def token_client(
    app: AppClient, now: Callable[[], float], sleeps: Sleeps, retry: RetryPolicy
) -> MaskinportenClient:
    return MaskinportenClient(app.settings, clock=now, sleep=sleeps, retry=retry)


def write_kubelet_secret(root: Path, data: dict[str, str], generation: int) -> None:
    """Write a Secret volume the way kubelet does: new timestamped dir, then swap ``..data``."""
    version = root / f"..2026_11_21_00_00_0{generation}.{generation}"
    version.mkdir()
    for key, value in data.items():
        (version / key).write_text(value)
    tmp_link = root / "..data_tmp"
    tmp_link.symlink_to(version.name)
    os.replace(tmp_link, root / "..data")  # atomic rename over the old symlink
    for key in data:
        link = root / key
        if not link.is_symlink():
            link.symlink_to(f"..data/{key}")


# -- token client --------------------------------------------------------------------------


async def test_token_is_cached_until_shortly_before_expiry(
    emulator: EmulatorServer, app: AppClient, token_client: MaskinportenClient
) -> None:
    async with token_client:
        first = await token_client.get_token()
        assert first.scope == f"{READ} {WRITE}"
        assert await token_client.get_token([WRITE, READ]) is first  # order-insensitive key
        assert issued(emulator, app.client.client_id) == 1
        emulator.state.clock.advance(89)  # 120 s token, 30 s margin
        assert await token_client.get_token() is first
        emulator.state.clock.advance(2)
        second = await token_client.get_token()
        assert second is not first
        assert issued(emulator, app.client.client_id) == 2
        # Another scope set has its own token.
        await token_client.get_token([READ])
        assert issued(emulator, app.client.client_id) == 3


async def test_one_refresh_for_fifty_concurrent_callers(
    emulator: EmulatorServer, app: AppClient, token_client: MaskinportenClient
) -> None:
    async with token_client:
        tokens = await asyncio.gather(*(token_client.get_token() for _ in range(50)))
        assert len({t.access_token for t in tokens}) == 1
        assert issued(emulator, app.client.client_id) == 1
        assert token_client.token_requests == 1


async def test_reload_after_kubelet_symlink_swap(
    emulator: EmulatorServer,
    register_app: RegisterApp,
    now: Callable[[], float],
    tmp_path: Path,
) -> None:
    first: AppClient = await register_app(name="first")
    second: AppClient = await register_app(name="second")
    write_kubelet_secret(tmp_path, first.settings.to_secret_data(), 1)
    async with MaskinportenClient.from_directory(tmp_path, check_interval=0, clock=now) as mp:
        await mp.get_token()
        assert mp.settings.client_id == first.client.client_id
        write_kubelet_secret(tmp_path, second.settings.to_secret_data(), 2)
        await mp.get_token()  # the cached token belonged to the old client: not reused
        assert mp.settings.client_id == second.client.client_id
    assert issued(emulator, first.client.client_id) == 1
    assert issued(emulator, second.client.client_id) == 1


async def test_key_rotation_in_secret_is_picked_up(
    emulator: EmulatorServer,
    admin: SelfServiceClient,
    app: AppClient,
    now: Callable[[], float],
    tmp_path: Path,
) -> None:
    write_kubelet_secret(tmp_path, app.settings.to_secret_data(), 1)
    async with MaskinportenClient.from_directory(tmp_path, check_interval=0, clock=now) as mp:
        await mp.get_token()
        new_key = generate_jwk()
        # The operator's order: register the new key first, then update the Secret.
        await admin.replace_jwks(app.client.client_id, [new_key, app.key])
        rotated = MaskinportenSettings.for_issuer(
            issuer=app.settings.issuer,
            client_id=app.client.client_id,
            jwk=new_key,
            scopes=app.settings.scopes,
        )
        write_kubelet_secret(tmp_path, rotated.to_secret_data(), 2)
        await admin.replace_jwks(app.client.client_id, [new_key])  # old key retired
        token = await mp.get_token()
        assert mp.settings.kid == new_key["kid"]
        assert token.scope == f"{READ} {WRITE}"


async def test_from_env(app: AppClient, now: Callable[[], float]) -> None:
    env = {k: v for k, v in app.settings.to_secret_data().items() if k.startswith("MASKINPORTEN_")}
    async with MaskinportenClient.from_env(env, clock=now) as mp:
        assert (await mp.get_token([READ])).scope == READ


async def test_invalid_scope_is_typed(token_client: MaskinportenClient) -> None:
    async with token_client:
        with pytest.raises(InvalidScopeError) as caught:
            await token_client.get_token(["fjord:other"])
    assert caught.value.code == "MP-200"
    assert caught.value.status == 400


async def test_unknown_client_is_invalid_grant(
    emulator: EmulatorServer, app: AppClient, now: Callable[[], float]
) -> None:
    settings = app.settings.model_copy(update={"client_id": "deleted-client"})
    async with MaskinportenClient(settings, clock=now) as mp:
        with pytest.raises(InvalidGrantError) as caught:
            await mp.get_token()
    assert caught.value.code == "MP-100"


async def test_retries_5xx_and_429_honouring_retry_after(
    emulator: EmulatorServer, app: AppClient, token_client: MaskinportenClient, sleeps: Sleeps
) -> None:
    emulator.state.set_faults(
        FaultConfig(rate_limit_rate=1.0, retry_after=7, max_faults=1, path_prefixes=("/token",))
    )
    async with token_client:
        await token_client.get_token()
        emulator.state.set_faults(
            FaultConfig(error_rate=1.0, error_status=502, max_faults=2, path_prefixes=("/token",))
        )
        token_client.invalidate()
        await token_client.get_token()
    # 429: the server's 7 s beat our 0.5 s; then two 502s: 0.5 s, 1 s.
    assert sleeps.calls == [7.0, 0.5, 1.0]
    assert issued(emulator, app.client.client_id) == 2
    assert token_client.token_requests == 5  # every retry sent a new grant (fresh jti)


async def test_gives_up_after_the_retry_budget(
    emulator: EmulatorServer, token_client: MaskinportenClient, sleeps: Sleeps
) -> None:
    emulator.state.set_faults(FaultConfig(error_rate=1.0, path_prefixes=("/token",)))
    async with token_client:
        with pytest.raises(UnavailableError) as caught:
            await token_client.get_token()
    assert caught.value.status == 503
    assert sleeps.calls == [0.5, 1.0, 2.0]


async def test_connection_errors_are_retried(
    app: AppClient, now: Callable[[], float], sleeps: Sleeps, retry: RetryPolicy
) -> None:
    dead = app.settings.model_copy(update={"token_endpoint": "http://127.0.0.1:9/token"})
    async with MaskinportenClient(dead, clock=now, sleep=sleeps, retry=retry) as mp:
        with pytest.raises(UnavailableError):
            await mp.get_token()
    assert len(sleeps.calls) == retry.attempts - 1


# -- self-service API client ---------------------------------------------------------------


async def test_admin_client_round_trip_with_one_supplier_token(
    emulator: EmulatorServer, admin: SelfServiceClient
) -> None:
    reg = ClientRegistration.maskinporten(
        client_name="fjord-ttd-app1", client_orgno=APP_ORGNO, scopes=[READ], description="d"
    )
    created = await admin.create_client(reg)
    assert created.supplier_orgno == "991825827"
    assert [c.client_id for c in await admin.list_clients()] == [created.client_id]
    assert (await admin.get_client(created.client_id)).client_name == "fjord-ttd-app1"
    updated = await admin.update_client(
        created.client_id, created.model_copy(update={"scopes": [READ, WRITE]})
    )
    assert updated.scopes == [READ, WRITE]
    key = generate_jwk()
    jwks = await admin.replace_jwks(created.client_id, [key])  # private members stripped
    assert [k["kid"] for k in jwks["keys"]] == [key["kid"]]
    assert "d" not in jwks["keys"][0]
    assert (await admin.get_jwks(created.client_id))["keys"][0]["n"] == public_jwks([key])["keys"][
        0
    ]["n"]
    await admin.delete_client(created.client_id)
    with pytest.raises(AdminNotFoundError) as caught:
        await admin.get_client(created.client_id)
    assert caught.value.status == 404
    assert caught.value.correlation_id
    assert issued(emulator, SUPPLIER_ID) == 1  # one supplier token for all eight calls


async def test_admin_supplier_token_refreshed_near_expiry(
    emulator: EmulatorServer, admin: SelfServiceClient
) -> None:
    await admin.list_clients()
    emulator.state.clock.advance(100)
    await admin.list_clients()
    assert issued(emulator, SUPPLIER_ID) == 2


async def test_admin_validation_error_carries_digdirs_message(admin: SelfServiceClient) -> None:
    bad = ClientRegistration.maskinporten(
        client_name="x", client_orgno=APP_ORGNO, scopes=["nope:x"]
    )
    with pytest.raises(AdminValidationError) as caught:
        await admin.create_client(bad)
    assert caught.value.status == 400
    assert caught.value.errors[0]["fieldIdentifier"] == "scopes"
    assert "nope:x" in caught.value.errors[0]["errorMessage"]


async def test_admin_retries_idempotent_calls(
    emulator: EmulatorServer, admin: SelfServiceClient, sleeps: Sleeps
) -> None:
    await admin.list_clients()  # supplier token fetched before the faults start
    emulator.state.set_faults(
        FaultConfig(error_rate=1.0, max_faults=2, path_prefixes=("/clients",))
    )
    assert await admin.list_clients() == []
    assert sleeps.calls == [0.5, 1.0]


async def test_admin_create_not_retried_on_5xx_but_on_429(
    emulator: EmulatorServer, admin: SelfServiceClient, sleeps: Sleeps
) -> None:
    await admin.list_clients()
    reg = ClientRegistration.maskinporten(client_name="c", client_orgno=APP_ORGNO, scopes=[READ])
    emulator.state.set_faults(
        FaultConfig(error_rate=1.0, max_faults=1, path_prefixes=("/clients",))
    )
    with pytest.raises(AdminApiError) as caught:
        await admin.create_client(reg)
    assert caught.value.status == 503
    assert sleeps.calls == []
    emulator.state.set_faults(
        FaultConfig(rate_limit_rate=1.0, retry_after=3, max_faults=1, path_prefixes=("/clients",))
    )
    await admin.create_client(reg)
    assert sleeps.calls == [3.0]
    assert len(await admin.list_clients()) == 1


async def test_runtime_fault_endpoint(http: httpx2.AsyncClient, emulator: EmulatorServer) -> None:
    faults = {"rate_limit_rate": 1.0, "retry_after": 4, "max_faults": 1}
    assert (await http.put(emulator.url + "/test/faults", json=faults)).status_code == 200
    limited = await http.get(emulator.well_known_url)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "4"
    assert (await http.get(emulator.well_known_url)).status_code == 200
    dump = (await http.get(emulator.url + "/test/dump")).json()
    assert dump["faults_injected"] == {"failures": 1, "429": 1}
    assert (await http.post(emulator.url + "/test/reset")).json()["faults"]["rate_limit_rate"] == 0
