"""The operator's Digdir call counter, on real calls to the emulator (retries included)."""

from __future__ import annotations

from collections.abc import Callable

from mp_support import APP_ORGNO, READ, Sleeps
from prometheus_client import CollectorRegistry

from fjord.maskinporten.admin import SelfServiceClient
from fjord.maskinporten.emulator import EmulatorServer, FaultConfig
from fjord.maskinporten.keys import generate_jwk
from fjord.maskinporten.registration import ClientRegistration
from fjord.maskinporten.secret_format import MaskinportenSettings
from fjord.operators.maskinporten.digdir_metrics import (
    METRIC,
    counting_client,
    digdir_counter,
    endpoint,
)
from fjord.retry import RetryPolicy


def test_endpoints_are_bounded_labels() -> None:
    assert endpoint("/clients") == "/clients"
    assert endpoint("/api/v1/clients/0f3a") == "/clients/{id}"
    assert endpoint("/clients/0f3a/jwks") == "/clients/{id}/jwks"
    assert endpoint("/token") == "/token"
    assert endpoint("/") == "/"


def counts(registry: CollectorRegistry) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["method"], s.labels["endpoint"], s.labels["code"]): s.value
        for metric in registry.collect()
        if metric.name == METRIC
        for s in metric.samples
        if s.name == f"{METRIC}_total"
    }


async def test_every_call_and_retry_is_counted(
    emulator: EmulatorServer,
    supplier_settings: MaskinportenSettings,
    now: Callable[[], float],
    sleeps: Sleeps,
    retry: RetryPolicy,
) -> None:
    registry = CollectorRegistry()
    http = counting_client(digdir_counter(registry))
    api = SelfServiceClient(
        api_base_url=emulator.url,
        supplier=supplier_settings,
        http=http,
        clock=now,
        sleep=sleeps,
        retry=retry,
    )
    try:
        registration = ClientRegistration.maskinporten(
            client_name="metrics", client_orgno=APP_ORGNO, scopes=[READ]
        )
        created = await api.create_client(registration)
        emulator.state.set_faults(
            FaultConfig(error_rate=1.0, error_status=503, max_faults=1, path_prefixes=("/clients",))
        )
        await api.replace_jwks(created.client_id, [generate_jwk("k1")])
        await api.list_clients()
    finally:
        await http.aclose()
    assert counts(registry) == {
        ("POST", "/token", "200"): 1.0,
        ("POST", "/clients", "201"): 1.0,
        ("POST", "/clients/{id}/jwks", "503"): 1.0,  # the injected fault …
        ("POST", "/clients/{id}/jwks", "201"): 1.0,  # … and its retry
        ("GET", "/clients", "200"): 1.0,
    }
