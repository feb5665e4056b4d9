"""Pure rules: registration and JWKS problems, retry delays, error mapping, grants, faults."""

from __future__ import annotations

import jwt
import pytest

from fjord.maskinporten.emulator import EmulatorClock, EmulatorConfig, FaultConfig, SupplierClient
from fjord.maskinporten.emulator.faults import decide
from fjord.maskinporten.emulator.state import EmulatorState
from fjord.maskinporten.errors import (
    AdminConflictError,
    AdminNotFoundError,
    InvalidGrantError,
    InvalidScopeError,
    TokenError,
    admin_error_from_response,
    token_error_from_body,
)
from fjord.maskinporten.grant import build_grant, private_key
from fjord.maskinporten.keys import generate_jwk, public_jwk, public_jwks
from fjord.maskinporten.registration import (
    ClientRegistration,
    jwks_problems,
    registration_problems,
)

KEY = generate_jwk("unit-key")


def test_maskinporten_registration_is_valid() -> None:
    reg = ClientRegistration.maskinporten(client_name="n", client_orgno="123456789", scopes=["a"])
    assert registration_problems(reg) == []
    with_supplier = reg.model_copy(update={"supplier_orgno": "1"})
    assert "supplier_orgno" not in with_supplier.request_body()


def test_registration_reports_every_problem_at_once() -> None:
    reg = ClientRegistration(integration_type="maskinporten", scopes=["a", "a"])
    fields = {p.field for p in registration_problems(reg)}
    assert fields == {
        "client_name",
        "client_orgno",
        "scopes",
        "application_type",
        "token_endpoint_auth_method",
        "grant_types",
    }


def test_jwks_problems() -> None:
    good = public_jwk(KEY)
    assert jwks_problems({"keys": [good]}) == []
    assert jwks_problems({"keys": []}) == []
    assert jwks_problems([good])  # not wrapped in {"keys": ...}
    assert jwks_problems({"keys": [good] * 6})
    assert jwks_problems({"keys": [{**good, "kid": "a b"}]})
    assert jwks_problems({"keys": [KEY]})  # private


def test_public_jwks_drops_private_members() -> None:
    assert all("d" not in k for k in public_jwks([KEY])["keys"])


def test_token_error_mapping() -> None:
    err = token_error_from_body(400, {"error": "invalid_scope", "error_description": "MP-200 x"})
    assert isinstance(err, InvalidScopeError)
    assert err.code == "MP-200"
    grant = token_error_from_body(400, {"error": "invalid_grant", "error_description": "MP-012"})
    assert isinstance(grant, InvalidGrantError)
    other = token_error_from_body(400, {"error": "weird"})
    assert type(other) is TokenError
    assert other.code is None


def test_admin_error_mapping() -> None:
    assert isinstance(admin_error_from_response(404, {"error": "not_found"}), AdminNotFoundError)
    conflict = admin_error_from_response(409, {"error": "conflict", "correlation_id": "c"})
    assert isinstance(conflict, AdminConflictError)
    assert conflict.correlation_id == "c"
    assert admin_error_from_response(500, "boom").description == "boom"


def test_grant_claims() -> None:
    token = build_grant(
        client_id="c",
        key=private_key(KEY),
        kid="unit-key",
        audience="https://maskinporten.no/",
        scopes=["a", "b"],
        now=1000.7,
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    assert jwt.get_unverified_header(token)["kid"] == "unit-key"
    assert claims["iat"] == 1000
    assert claims["exp"] == 1060
    assert claims["scope"] == "a b"
    again = build_grant(
        client_id="c", key=private_key(KEY), kid="k", audience="a", scopes=["a"], now=1000
    )
    assert jwt.decode(again, options={"verify_signature": False})["jti"] != claims["jti"]


def test_clock() -> None:
    clock = EmulatorClock(source=lambda: 100.0)
    assert clock.now() == 100
    clock.advance(5)
    assert clock.now() == 105
    clock.freeze()
    clock.advance(10)
    assert clock.now() == 115
    clock.reset()
    assert clock.now() == 100


def _state(faults: FaultConfig, seed: int) -> EmulatorState:
    supplier = SupplierClient(client_id="s", orgno="123456789", jwks=public_jwks([KEY]))
    config = EmulatorConfig(
        issuer="http://x/", supplier=supplier, faults=faults, seed=seed, signing_jwk=KEY
    )
    return EmulatorState(config)


@pytest.mark.parametrize("seed", [1, 2])
def test_faults_are_deterministic_per_seed(seed: int) -> None:
    faults = FaultConfig(error_rate=0.3, rate_limit_rate=0.2, latency_rate=0.5, latency_seconds=1)
    states = [_state(faults, seed), _state(faults, seed)]
    runs = [[decide(state, "/token") for _ in range(50)] for state in states]
    assert runs[0] == runs[1]
    statuses = {f.status for f in runs[0]}
    assert statuses == {None, 429, 503}
    assert {f.delay for f in runs[0]} == {0.0, 1.0}
    assert all(f.retry_after == 1 for f in runs[0] if f.status == 429)


def test_faults_respect_budget_and_paths() -> None:
    state = _state(FaultConfig(error_rate=1, max_faults=2, path_prefixes=("/token",)), 0)
    assert decide(state, "/clients").status is None
    assert decide(state, "/test/dump").status is None
    assert [decide(state, "/token").status for _ in range(3)] == [503, 503, None]
