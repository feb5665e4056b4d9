"""The Maskinporten emulator never answers 5xx, and it enforces Digdir's key rules.

Schemathesis covers every route of its OpenAPI (the ``/test/`` hooks excepted: they inject
faults, 5xx included, on purpose). The token endpoint and the JWKS replacement take raw bodies
the schema cannot describe, so hypothesis generates those: form parameters, grants signed with
a registered key but with arbitrary header and claims, and JWK sets with arbitrary members.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any

import httpx2
import pytest
import schemathesis
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fuzz_support import (
    MAX_EXAMPLES_PER_ROUTE,
    PHASES,
    SUPPLIER_ID,
    SUPPLIER_ORGNO,
    describe,
    private_key,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fjord.maskinporten.emulator import EmulatorServer, SupplierClient
from fjord.maskinporten.emulator.app import create_app
from fjord.maskinporten.emulator.config import EmulatorConfig
from fjord.maskinporten.emulator.state import EmulatorState
from fjord.maskinporten.keys import generate_jwk, public_jwk, public_jwks
from fjord.maskinporten.registration import ClientRegistration

ALTINN_SINGLE_GET = "GET /api/v1/altinn/admin/clients/{client_id}"
HYPOTHESIS_EXAMPLES = 30  # per raw-body target
FUZZ = settings(
    max_examples=HYPOTHESIS_EXAMPLES,
    phases=PHASES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def _schema() -> schemathesis.BaseSchema:
    supplier = SupplierClient(client_id=SUPPLIER_ID, orgno=SUPPLIER_ORGNO, jwks={"keys": []})
    state = EmulatorState(EmulatorConfig(issuer="http://127.0.0.1:1/", supplier=supplier))
    document = create_app(state).openapi()
    return schemathesis.openapi.from_dict(document).exclude(path_regex="^/test/")


schema = _schema()


@pytest.fixture
def client_id(admin: httpx2.Client) -> str:
    registration = ClientRegistration.maskinporten(
        client_name="fuzz", client_orgno="310000001", scopes=["fjord:test.read"]
    )
    response = admin.post("/clients", json=registration.request_body())
    assert response.status_code in (200, 201), response.text
    created: str = response.json()["client_id"]
    return created


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES_PER_ROUTE,
    phases=PHASES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_route_answers_5xx(
    case: schemathesis.Case,
    admin: httpx2.Client,
    emulator: EmulatorServer,
    fuzz_cases: Counter[str],
) -> None:
    fuzz_cases[f"emulator {case.operation.label}"] += 1
    headers = {"Authorization": admin.headers["Authorization"]}
    response = case.call(base_url=emulator.url, headers=headers)
    if case.operation.label == ALTINN_SINGLE_GET and response.status_code == 500:
        # Emulated on purpose: Altinn's real API answers 500 here (reference section 2.3).
        assert "single-client GET is not usable" in response.text
        return
    assert response.status_code < 500, describe(case, response)


text = st.text(max_size=40)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


def put_json(admin: httpx2.Client, path: str, body: Any) -> httpx2.Response:
    """PUT ``body`` as JSON, NaN and Infinity included (Python's parser accepts them)."""
    content = json.dumps(body).encode()
    return admin.put(path, content=content, headers={"Content-Type": "application/json"})


def assert_oauth_error_or_token(response: httpx2.Response) -> None:
    assert response.status_code < 500, response.text
    body = response.json()
    assert ("access_token" in body) if response.status_code == 200 else ("error" in body), body


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["grant_type", "assertion", "scope", "x"]), text))
def test_token_endpoint_with_arbitrary_parameters(
    params: dict[str, str], emulator: EmulatorServer, fuzz_cases: Counter[str]
) -> None:
    fuzz_cases["emulator POST /token (form parameters)"] += 1
    assert_oauth_error_or_token(httpx2.post(emulator.token_endpoint, data=params))


@FUZZ
@given(
    header=st.dictionaries(st.sampled_from(["alg", "kid", "x5c", "typ", "crit"]), json_values),
    claims=st.dictionaries(
        st.sampled_from(["aud", "iss", "scope", "iat", "exp", "jti", "resource", "x"]),
        json_values,
    )
    | json_values,
)
def test_token_endpoint_with_signed_grants_of_any_shape(
    header: dict[str, Any],
    claims: Any,
    emulator: EmulatorServer,
    supplier_key: dict[str, Any],
    fuzz_cases: Counter[str],
) -> None:
    fuzz_cases["emulator POST /token (signed grants)"] += 1
    assertion = signed_jws(
        {"kid": supplier_key["kid"], "alg": "RS256", **header}, claims, supplier_key
    )
    data = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    assert_oauth_error_or_token(httpx2.post(emulator.token_endpoint, data=data))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_jws(header: dict[str, Any], claims: Any, key: dict[str, Any]) -> str:
    """A compact JWS signed RS256 with ``key``, whatever the header says (PyJWT would refuse
    to write headers it does not like, which is exactly what the fuzz wants to send)."""
    signing_input = ".".join(
        b64url(json.dumps(part).encode()) for part in (header, claims)
    ).encode()
    private = private_key(json.dumps(key, sort_keys=True))
    signature = private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr,call-arg]
    return f"{signing_input.decode()}.{b64url(signature)}"


def b64(number: int) -> str:
    raw = number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


VALID = public_jwk(generate_jwk("fuzz-valid-1"))
key_members = st.fixed_dictionaries(
    {},
    optional={
        "kty": st.sampled_from(["RSA", "EC", "oct"]) | json_values,
        "alg": st.sampled_from(["RS256", "RS512", "HS256", "none"]) | json_values,
        "use": st.sampled_from(["sig", "enc"]) | json_values,
        "kid": st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True) | json_values,
        "n": st.sampled_from([VALID["n"], b64(3 * 5), VALID["n"] + "==", "%%%"]) | json_values,
        "e": st.sampled_from(["AQAB", "AQ", "Ag", "AAE"]) | json_values,
        "exp": st.integers() | st.floats() | json_values,
        "x5c": json_values,
        "key_ops": json_values,
    },
)


@FUZZ
@given(keys=st.lists(key_members, max_size=6) | json_values)
def test_jwks_replacement_with_arbitrary_keys(
    keys: Any, admin: httpx2.Client, client_id: str, fuzz_cases: Counter[str]
) -> None:
    fuzz_cases["emulator PUT /clients/{client_id}/jwks (key sets)"] += 1
    response = put_json(admin, f"/clients/{client_id}/jwks", {"keys": keys})
    assert response.status_code in (201, 400, 409), response.text
    listed = admin.get(f"/clients/{client_id}/jwks")
    assert listed.status_code == 200, listed.text


def small_rsa_jwk(bits: int, kid: str) -> dict[str, Any]:
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    public = numbers.public_numbers()
    return {
        "kty": "RSA",
        "alg": "RS256",
        "use": "sig",
        "kid": kid,
        "n": b64(public.n),
        "e": b64(public.e),
    }


def put_jwks(admin: httpx2.Client, client_id: str, *keys: dict[str, Any]) -> httpx2.Response:
    return put_json(admin, f"/clients/{client_id}/jwks", {"keys": list(keys)})


def field_errors(response: httpx2.Response) -> list[str]:
    return [f"{e['fieldIdentifier']}: {e['errorMessage']}" for e in response.json()["errors"]]


def test_digdir_key_rules(admin: httpx2.Client, client_id: str) -> None:
    short = put_jwks(admin, client_id, small_rsa_jwk(1024, "short-1"))
    assert short.status_code == 400
    assert field_errors(short) == ["keys[0].n: RSA keys must be at least 2048 bits, got 1024"]
    padded = put_jwks(admin, client_id, {**VALID, "n": VALID["n"] + "=="})
    assert field_errors(padded) == ["keys[0].n: n must be base64url without padding"]
    even = put_jwks(admin, client_id, {**VALID, "e": "Ag"})
    assert field_errors(even) == ["keys[0].e: e must be an odd exponent of at least 3"]
    typed = put_jwks(admin, client_id, {**VALID, "kid": 7})
    assert "keys[0].kid: kid must be a string" in field_errors(typed)
    forever = put_jwks(admin, client_id, {**VALID, "exp": float("inf")})
    assert field_errors(forever) == ["keys[0].exp: exp must be a number of seconds since the epoch"]
    assert put_jwks(admin, client_id, small_rsa_jwk(2048, "ok-2048")).status_code == 201
    assert (
        put_jwks(
            admin, client_id, public_jwks([generate_jwk("ok-4096", size=4096)])["keys"][0]
        ).status_code
        == 201
    )
