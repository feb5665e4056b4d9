"""Conformance of the emulator's self-service API: client and JWKS rules, auth, Altinn variant."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx2
import jwt
import pytest
from mp_support import APP_ORGNO, READ, RESTRICTED, SUPPLIER_ID, WRITE, AppClient, RegisterApp

from fjord.maskinporten.emulator import EmulatorServer
from fjord.maskinporten.grant import build_grant, private_key
from fjord.maskinporten.keys import generate_jwk, public_jwk
from fjord.maskinporten.registration import JWT_BEARER, ClientRegistration

YEAR = 365 * 24 * 3600


async def token(
    http: httpx2.AsyncClient,
    emulator: EmulatorServer,
    client_id: str,
    key: dict[str, Any],
    scopes: list[str],
) -> str:
    grant = build_grant(
        client_id=client_id,
        key=private_key(key),
        kid=key["kid"],
        audience=emulator.issuer,
        scopes=scopes,
        now=emulator.state.clock.now(),
    )
    response = await http.post(
        emulator.token_endpoint, data={"grant_type": JWT_BEARER, "assertion": grant}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def auth(
    http: httpx2.AsyncClient, emulator: EmulatorServer, supplier_key: dict[str, Any]
) -> Callable[..., Any]:
    async def headers(*scopes: str) -> dict[str, str]:
        chosen = list(scopes) or ["idporten:dcr.write", "idporten:dcr.supplier"]
        access = await token(http, emulator, SUPPLIER_ID, supplier_key, chosen)
        return {"Authorization": f"Bearer {access}"}

    return headers


def body(**changes: Any) -> dict[str, Any]:
    reg = ClientRegistration.maskinporten(client_name="c", client_orgno=APP_ORGNO, scopes=[READ])
    data = reg.request_body()
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def field_errors(response: httpx2.Response) -> list[str]:
    return [e["fieldIdentifier"] for e in response.json()["errors"]]


def assert_api_error(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    data: dict[str, Any] = response.json()
    assert set(data) == {
        "status",
        "timestamp",
        "correlation_id",
        "error",
        "error_description",
        "errors",
    }
    assert data["status"] == status
    return data


async def test_create_returns_201_with_server_fields(
    http: httpx2.AsyncClient, emulator: EmulatorServer, auth: Callable[..., Any]
) -> None:
    response = await http.post(emulator.url + "/clients", json=body(), headers=await auth())
    assert response.status_code == 201, response.text
    client = response.json()
    assert client["client_id"]
    assert client["supplier_orgno"] == "991825827"
    assert client["active"] is True
    assert client["jwks_uri"] == ""
    assert client["created"] == client["last_updated"]
    assert client["integration_type"] == "maskinporten"
    assert client["access_token_lifetime"] == 120
    listed = await http.get(emulator.url + "/clients", headers=await auth())
    assert [c["client_id"] for c in listed.json()] == [client["client_id"]]  # admin hidden
    got = await http.get(emulator.url + f"/clients/{client['client_id']}", headers=await auth())
    assert got.json() == client


async def test_supplied_client_id_and_conflict(
    http: httpx2.AsyncClient, emulator: EmulatorServer, auth: Callable[..., Any]
) -> None:
    headers = await auth()
    first = await http.post(emulator.url + "/clients", json=body(client_id="mine"), headers=headers)
    assert first.json()["client_id"] == "mine"
    again = await http.post(emulator.url + "/clients", json=body(client_id="mine"), headers=headers)
    assert_api_error(again, 409)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"client_orgno": None}, "client_orgno"),
        ({"client_orgno": "12"}, "client_orgno"),
        ({"client_name": None}, "client_name"),
        ({"supplier_orgno": "991825827"}, "supplier_orgno"),
        ({"integration_type": None}, "integration_type"),
        ({"integration_type": "bogus"}, "integration_type"),
        ({"application_type": "browser"}, "application_type"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "token_endpoint_auth_method"),
        ({"grant_types": ["authorization_code"]}, "grant_types"),
        ({"scopes": [READ, READ]}, "scopes"),
        ({"scopes": ["no:such-scope"]}, "scopes"),
        ({"scopes": ["idporten:dcr.altinn"]}, "scopes"),
        ({"scopes": ["idporten:dcr.write"]}, "scopes"),
        ({"scopes": [RESTRICTED]}, "scopes"),
        ({"scopes": ["fjord:login"]}, "scopes"),
    ],
)
async def test_create_rules(
    http: httpx2.AsyncClient,
    emulator: EmulatorServer,
    auth: Callable[..., Any],
    changes: dict[str, Any],
    field: str,
) -> None:
    data = body()
    data.update(changes)
    data = {k: v for k, v in data.items() if v is not None}
    response = await http.post(emulator.url + "/clients", json=data, headers=await auth())
    assert_api_error(response, 400)
    assert field in field_errors(response)
    assert emulator.state.dump()["clients"][0]["bootstrap"] is True
    assert len(emulator.state.dump()["clients"]) == 1


async def test_restricted_scope_for_an_org_with_access(
    http: httpx2.AsyncClient, emulator: EmulatorServer, auth: Callable[..., Any]
) -> None:
    data = body(client_orgno="111111111", scopes=[RESTRICTED])
    response = await http.post(emulator.url + "/clients", json=data, headers=await auth())
    assert response.status_code == 201, response.text


async def test_other_org_needs_supplier_scope(
    http: httpx2.AsyncClient, emulator: EmulatorServer, auth: Callable[..., Any]
) -> None:
    headers = await auth("idporten:dcr.write")
    response = await http.post(emulator.url + "/clients", json=body(), headers=headers)
    assert_api_error(response, 403)
    own = body(client_orgno="991825827")
    created = await http.post(emulator.url + "/clients", json=own, headers=headers)
    assert created.status_code == 201
    assert "supplier_orgno" not in created.json()


async def test_update_integration_type_is_immutable(
    http: httpx2.AsyncClient, emulator: EmulatorServer, auth: Callable[..., Any]
) -> None:
    headers = await auth()
    client = (await http.post(emulator.url + "/clients", json=body(), headers=headers)).json()
    url = emulator.url + f"/clients/{client['client_id']}"
    changed = body(
        integration_type="idporten",
        application_type="web",
        token_endpoint_auth_method="client_secret_basic",
        grant_types=["authorization_code"],
        scopes=[],
    )
    response = await http.put(url, json=changed, headers=headers)
    assert_api_error(response, 400)
    assert field_errors(response) == ["integration_type"]


async def test_update_replaces_and_keeps_identity(
    http: httpx2.AsyncClient, emulator: EmulatorServer, auth: Callable[..., Any]
) -> None:
    headers = await auth()
    client = (await http.post(emulator.url + "/clients", json=body(), headers=headers)).json()
    emulator.state.clock.advance(5)
    url = emulator.url + f"/clients/{client['client_id']}"
    response = await http.put(
        url, json=body(scopes=[READ, WRITE], description="d"), headers=headers
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["scopes"] == [READ, WRITE]
    assert updated["client_id"] == client["client_id"]
    assert updated["created"] == client["created"]
    assert updated["supplier_orgno"] == client["supplier_orgno"]
    assert updated["last_updated"] != client["last_updated"]
    mismatch = await http.put(url, json=body(client_id="other"), headers=headers)
    assert_api_error(mismatch, 400)
    missing = await http.put(emulator.url + "/clients/nope", json=body(), headers=headers)
    assert_api_error(missing, 404)


async def test_delete_then_gone(
    http: httpx2.AsyncClient, emulator: EmulatorServer, auth: Callable[..., Any]
) -> None:
    headers = await auth()
    client = (await http.post(emulator.url + "/clients", json=body(), headers=headers)).json()
    url = emulator.url + f"/clients/{client['client_id']}"
    assert (await http.delete(url, headers=headers)).status_code == 204
    assert_api_error(await http.delete(url, headers=headers), 404)
    assert_api_error(await http.get(url, headers=await auth("idporten:dcr.read")), 404)


async def test_bootstrap_supplier_is_not_reachable_through_the_api(
    http: httpx2.AsyncClient, emulator: EmulatorServer, auth: Callable[..., Any]
) -> None:
    url = emulator.url + f"/clients/{SUPPLIER_ID}"
    assert_api_error(await http.delete(url, headers=await auth()), 404)


async def test_client_secret_lifecycle(
    http: httpx2.AsyncClient, emulator: EmulatorServer, auth: Callable[..., Any]
) -> None:
    headers = await auth()
    data = body(
        integration_type="idporten",
        token_endpoint_auth_method="client_secret_basic",
        grant_types=["authorization_code"],
        scopes=["fjord:login"],
        redirect_uris=["https://app.example/cb"],
    )
    created = (await http.post(emulator.url + "/clients", json=data, headers=headers)).json()
    assert created["client_secret"]
    url = emulator.url + f"/clients/{created['client_id']}"
    assert "client_secret" not in (await http.get(url, headers=headers)).json()
    rotated = (await http.post(url + "/secret", headers=headers)).json()
    assert rotated["client_secret"] not in ("", created["client_secret"])
    data["token_endpoint_auth_method"] = "private_key_jwt"
    assert (await http.put(url, json=data, headers=headers)).status_code == 200
    dumped = next(
        c for c in emulator.state.dump()["clients"] if c["client_id"] == created["client_id"]
    )
    assert dumped["has_client_secret"] is False


# -- JWKS ------------------------------------------------------------------------------------


@pytest.fixture
async def client_url(
    http: httpx2.AsyncClient, emulator: EmulatorServer, auth: Callable[..., Any]
) -> str:
    created = (await http.post(emulator.url + "/clients", json=body(), headers=await auth())).json()
    return f"{emulator.url}/clients/{created['client_id']}"


async def test_jwks_replace_and_read(
    http: httpx2.AsyncClient, emulator: EmulatorServer, auth: Callable[..., Any], client_url: str
) -> None:
    headers = await auth()
    keys = [public_jwk(generate_jwk(f"k{i}")) for i in range(5)]
    response = await http.post(client_url + "/jwks", json={"keys": keys}, headers=headers)
    assert response.status_code == 201, response.text
    stored = response.json()["keys"]
    assert [k["kid"] for k in stored] == [f"k{i}" for i in range(5)]
    now = int(emulator.state.clock.now())
    assert all(k["exp"] == now + YEAR for k in stored)
    # PUT is the same replace, with the whole set.
    put = await http.put(client_url + "/jwks", json={"keys": keys[:1]}, headers=headers)
    assert put.status_code == 201
    read = await http.get(client_url + "/jwks", headers=await auth("idporten:dcr.read"))
    assert read.status_code == 200
    assert [k["kid"] for k in read.json()["keys"]] == ["k0"]
    assert_api_error(await http.get(emulator.url + "/clients/nope/jwks", headers=headers), 404)


async def test_posted_exp_shortens_key_life(
    http: httpx2.AsyncClient, emulator: EmulatorServer, auth: Callable[..., Any], client_url: str
) -> None:
    exp = int(emulator.state.clock.now()) + 30 * 24 * 3600
    key = {**public_jwk(generate_jwk("short")), "exp": exp}
    response = await http.post(client_url + "/jwks", json={"keys": [key]}, headers=await auth())
    assert response.json()["keys"][0]["exp"] == exp


def _key(kid: str = "ok", **changes: Any) -> dict[str, Any]:
    key = public_jwk(generate_jwk("placeholder"))
    key["kid"] = kid
    key.update(changes)
    return {k: v for k, v in key.items() if v is not None}


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param([_key(f"k{i}") for i in range(6)], id="six-keys"),
        pytest.param([_key("bad kid")], id="kid-with-space"),
        pytest.param([_key("bad/kid")], id="kid-with-slash"),
        pytest.param([_key("dup"), _key("dup")], id="duplicate-kid"),
        pytest.param([_key(kid="")], id="empty-kid"),
        pytest.param([_key(alg=None)], id="no-alg"),
        pytest.param([_key(use="enc")], id="use-enc"),
        pytest.param([_key(alg="ES256")], id="alg-es256"),
        pytest.param([generate_jwk("private")], id="private-key"),
    ],
)
async def test_jwks_rules(
    http: httpx2.AsyncClient, auth: Callable[..., Any], client_url: str, keys: list[dict[str, Any]]
) -> None:
    response = await http.post(client_url + "/jwks", json={"keys": keys}, headers=await auth())
    data = assert_api_error(response, 400)
    assert data["errors"]


async def test_kid_taken_by_another_client(
    http: httpx2.AsyncClient, auth: Callable[..., Any], register_app: RegisterApp, client_url: str
) -> None:
    app: AppClient = await register_app()
    key = {**public_jwk(generate_jwk()), "kid": app.settings.kid}
    response = await http.post(client_url + "/jwks", json={"keys": [key]}, headers=await auth())
    assert_api_error(response, 409)


# -- authentication --------------------------------------------------------------------------


async def test_admin_calls_need_a_valid_token(
    http: httpx2.AsyncClient, emulator: EmulatorServer, auth: Callable[..., Any]
) -> None:
    url = emulator.url + "/clients"
    missing = await http.get(url)
    assert_api_error(missing, 401)
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert_api_error(await http.get(url, headers={"Authorization": "Bearer nonsense"}), 401)
    forged = jwt.encode(
        {"iss": emulator.issuer, "scope": "idporten:dcr.read"}, private_key(generate_jwk()), "RS256"
    )
    assert_api_error(await http.get(url, headers={"Authorization": f"Bearer {forged}"}), 401)
    headers = await auth("idporten:dcr.read")
    emulator.state.clock.advance(121)
    expired = await http.get(url, headers=headers)
    assert_api_error(expired, 401)


async def test_admin_scopes_per_operation(
    http: httpx2.AsyncClient, emulator: EmulatorServer, auth: Callable[..., Any], client_url: str
) -> None:
    read = await auth("idporten:dcr.read")
    assert (await http.get(emulator.url + "/clients", headers=read)).status_code == 200
    assert_api_error(await http.post(emulator.url + "/clients", json=body(), headers=read), 403)
    assert_api_error(await http.put(client_url, json=body(), headers=read), 403)
    assert_api_error(await http.delete(client_url, headers=read), 403)
    modify = await auth("idporten:dcr.modify", "idporten:dcr.supplier")
    assert (await http.put(client_url, json=body(), headers=modify)).status_code == 200
    keys = {"keys": [public_jwk(generate_jwk())]}
    assert (await http.post(client_url + "/jwks", json=keys, headers=modify)).status_code == 201
    assert_api_error(await http.delete(client_url, headers=modify), 403)


async def test_app_token_cannot_administer(
    http: httpx2.AsyncClient, emulator: EmulatorServer, register_app: RegisterApp
) -> None:
    app: AppClient = await register_app()
    app_token = await token(http, emulator, app.client.client_id, app.key, [READ])
    headers = {"Authorization": f"Bearer {app_token}"}
    assert_api_error(await http.get(emulator.url + "/clients", headers=headers), 403)


# -- Altinn admin variant --------------------------------------------------------------------


async def test_altinn_variant(
    http: httpx2.AsyncClient, emulator: EmulatorServer, auth: Callable[..., Any]
) -> None:
    base = emulator.url + "/api/v1/altinn/admin/clients"
    generic = await auth()
    assert_api_error(await http.get(base, headers=generic), 401)  # lacks idporten:dcr.altinn
    altinn = await auth("idporten:dcr.altinn")
    created = await http.post(base, json=body(), headers=altinn)
    assert created.status_code == 201, created.text
    client_id = created.json()["client_id"]
    assert [c["client_id"] for c in (await http.get(base, headers=altinn)).json()] == [client_id]
    assert_api_error(await http.get(f"{base}/{client_id}", headers=altinn), 500)
    keys = {"keys": [public_jwk(generate_jwk())]}
    assert (
        await http.post(f"{base}/{client_id}/jwks", json=keys, headers=altinn)
    ).status_code == 201
    assert (await http.delete(f"{base}/{client_id}", headers=altinn)).status_code == 204


async def test_a_client_hanging_up_mid_body_is_no_server_error(
    emulator: EmulatorServer, auth: Callable[..., Any]
) -> None:
    headers = await auth()
    errors: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = errors.append  # type: ignore[method-assign]
    uvicorn_errors = logging.getLogger("uvicorn.error")
    uvicorn_errors.addHandler(handler)
    try:
        with socket.create_connection(("127.0.0.1", emulator.port), timeout=10) as sock:
            head = (
                "POST /clients HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{emulator.port}\r\n"
                f"Authorization: {headers['Authorization']}\r\n"
                "Content-Type: application/json\r\n"
                "Content-Length: 1000\r\n\r\n"
            )
            sock.sendall(head.encode() + b'{"client_name": ')  # then hang up mid-body
        deadline = time.monotonic() + 30
        while not errors and emulator.state.counters["client_disconnects"] < 1:
            assert time.monotonic() < deadline, "the emulator never saw the client hang up"
            await asyncio.sleep(0.01)
    finally:
        uvicorn_errors.removeHandler(handler)
    assert [r.getMessage() for r in errors] == []  # was: "Exception in ASGI application"
    assert emulator.state.counters["client_disconnects"] == 1
    assert all(c.bootstrap for c in emulator.state.clients.values())  # nothing half-created
