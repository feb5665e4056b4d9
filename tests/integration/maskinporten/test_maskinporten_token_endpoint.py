"""Conformance of the emulator's token endpoint with Maskinporten's JWT-bearer grant rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import jwt
import pytest
from jwt.algorithms import RSAAlgorithm
from mp_support import APP_ORGNO, READ, WRITE, AppClient, RegisterApp

from fjord.maskinporten.emulator import EmulatorServer
from fjord.maskinporten.grant import private_key
from fjord.maskinporten.keys import generate_jwk
from fjord.maskinporten.registration import JWT_BEARER

YEAR = 365 * 24 * 3600


def grant_for(
    app: AppClient,
    now: float,
    *,
    scopes: tuple[str, ...] = (READ,),
    key: dict[str, Any] | None = None,
    kid: str | None = None,
    **overrides: Any,
) -> str:
    """A valid grant for ``app``, with claims replaced or (value None) removed."""
    claims: dict[str, Any] = {
        "aud": app.settings.issuer,
        "iss": app.settings.client_id,
        "iat": int(now),
        "exp": int(now) + 60,
        "jti": f"jti-{now}-{overrides!r}-{scopes!r}",
        "scope": " ".join(scopes),
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    headers = {"kid": kid if kid is not None else app.settings.kid}
    if kid == "":
        headers = {}
    return jwt.encode(claims, private_key(key or app.key), "RS256", headers=headers)


async def post(
    http: httpx2.AsyncClient, emulator: EmulatorServer, assertion: str
) -> httpx2.Response:
    return await http.post(
        emulator.token_endpoint, data={"grant_type": JWT_BEARER, "assertion": assertion}
    )


def assert_error(response: httpx2.Response, error: str, text: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == error
    assert text in body["error_description"]


@pytest.fixture
async def app(register_app: RegisterApp) -> AppClient:
    app: AppClient = await register_app()
    return app


async def test_metadata_and_jwks(http: httpx2.AsyncClient, emulator: EmulatorServer) -> None:
    meta = (await http.get(emulator.well_known_url)).json()
    assert meta["issuer"] == emulator.issuer
    assert meta["issuer"].endswith("/")
    assert meta["token_endpoint"] == emulator.token_endpoint
    assert meta["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert meta["grant_types_supported"] == [JWT_BEARER]
    assert meta["token_endpoint_auth_signing_alg_values_supported"] == ["RS256", "RS384", "RS512"]
    jwks = (await http.get(meta["jwks_uri"])).json()
    assert [k["kty"] for k in jwks["keys"]] == ["RSA"]
    assert all("d" not in k for k in jwks["keys"])


async def test_valid_grant_gives_signed_access_token(
    http: httpx2.AsyncClient, emulator: EmulatorServer, app: AppClient, now: Callable[[], float]
) -> None:
    response = await post(http, emulator, grant_for(app, now(), scopes=(READ, WRITE)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 120
    assert body["scope"] == f"{READ} {WRITE}"
    jwks = (await http.get(emulator.url + "/jwk")).json()
    header = jwt.get_unverified_header(body["access_token"])
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(
        body["access_token"],
        RSAAlgorithm.from_jwk(json.dumps(jwk)),  # type: ignore[arg-type]
        algorithms=["RS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == emulator.issuer
    assert claims["client_id"] == app.client.client_id
    assert claims["client_amr"] == "private_key_jwt"
    assert claims["consumer"] == {"authority": "iso6523-actorid-upis", "ID": f"0192:{APP_ORGNO}"}
    assert claims["exp"] - claims["iat"] == 120
    assert claims["scope"] == f"{READ} {WRITE}"


async def test_query_parameters_are_accepted_like_altinns_operator_sends_them(
    http: httpx2.AsyncClient, emulator: EmulatorServer, app: AppClient, now: Callable[[], float]
) -> None:
    params = {"grant_type": JWT_BEARER, "assertion": grant_for(app, now())}
    response = await http.post(emulator.token_endpoint, params=params)
    assert response.status_code == 200, response.text


async def test_only_post(http: httpx2.AsyncClient, emulator: EmulatorServer) -> None:
    assert (await http.get(emulator.token_endpoint)).status_code == 405


async def test_wrong_grant_type_and_missing_assertion(
    http: httpx2.AsyncClient, emulator: EmulatorServer, app: AppClient, now: Callable[[], float]
) -> None:
    wrong = await http.post(
        emulator.token_endpoint,
        data={"grant_type": "client_credentials", "assertion": grant_for(app, now())},
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "unsupported_grant_type"
    missing = await http.post(emulator.token_endpoint, data={"grant_type": JWT_BEARER})
    assert_error(missing, "invalid_request", "MP-011")
    garbage = await post(http, emulator, "not-a-jwt")
    assert_error(garbage, "invalid_request", "MP-011")


@pytest.mark.parametrize(
    ("overrides", "error", "text"),
    [
        ({"aud": "AUDIENCE_WITHOUT_SLASH"}, "invalid_grant", "MP-110"),
        ({"aud": "https://maskinporten.no/"}, "invalid_grant", "MP-110"),
        ({"aud": None}, "invalid_grant", "MP-110"),
        ({"iss": "no-such-client"}, "invalid_grant", "MP-100"),
        ({"iss": None}, "invalid_grant", "MP-100"),
        ({"iat": "+11"}, "invalid_grant", "Issue time is after now"),
        ({"iat": "-11"}, "invalid_grant", "MP-130"),
        ({"iat": None}, "invalid_request", "MP-011"),
        ({"exp": "+121"}, "invalid_grant", "MP-130"),
        ({"exp": None}, "invalid_request", "MP-011"),
        ({"scope": None}, "invalid_scope", "MP-200"),
        ({"scope": "fjord:other"}, "invalid_scope", "MP-200"),
        ({"scope": f"{READ} fjord:other"}, "invalid_scope", "MP-200"),
        ({"scope": "no:such-scope"}, "invalid_scope", "MP-200"),
    ],
)
async def test_each_claim_rule(
    http: httpx2.AsyncClient,
    emulator: EmulatorServer,
    app: AppClient,
    now: Callable[[], float],
    overrides: dict[str, Any],
    error: str,
    text: str,
) -> None:
    t = int(now())
    resolved = dict(overrides)
    if resolved.get("aud") == "AUDIENCE_WITHOUT_SLASH":
        resolved["aud"] = emulator.issuer.rstrip("/")
    if isinstance(resolved.get("iat"), str):
        resolved["iat"] = t + int(resolved["iat"])
        resolved["exp"] = resolved["iat"] + 60
    if isinstance(resolved.get("exp"), str):
        resolved["exp"] = t + int(resolved["exp"])
    response = await post(http, emulator, grant_for(app, t, **resolved))
    assert_error(response, error, text)


async def test_time_window_edges_are_inclusive(
    http: httpx2.AsyncClient, emulator: EmulatorServer, app: AppClient, now: Callable[[], float]
) -> None:
    t = int(now())
    for iat, exp in ((t + 10, t + 130), (t - 10, t + 110), (t, t + 120)):
        response = await post(http, emulator, grant_for(app, t, iat=iat, exp=exp, jti=f"{iat}"))
        assert response.status_code == 200, response.text


async def test_grant_reuse_is_rejected(
    http: httpx2.AsyncClient, emulator: EmulatorServer, app: AppClient, now: Callable[[], float]
) -> None:
    used_before = emulator.state.dump()["used_jti_count"]  # the supplier's own grants
    grant = grant_for(app, now(), jti="once")
    assert (await post(http, emulator, grant)).status_code == 200
    assert_error(await post(http, emulator, grant), "invalid_grant", "MP-012")
    # A different assertion with the same jti is the same grant.
    again = grant_for(app, now(), jti="once", scope=WRITE)
    assert_error(await post(http, emulator, again), "invalid_grant", "MP-012")
    # Without a jti the assertion itself may not be replayed either.
    no_jti = grant_for(app, now(), jti=None)
    assert (await post(http, emulator, no_jti)).status_code == 200
    assert_error(await post(http, emulator, no_jti), "invalid_grant", "MP-012")
    assert emulator.state.dump()["used_jti_count"] == used_before + 2


async def test_kid_rules(
    http: httpx2.AsyncClient, emulator: EmulatorServer, app: AppClient, now: Callable[[], float]
) -> None:
    t = now()
    missing = await post(http, emulator, grant_for(app, t, kid=""))
    assert_error(missing, "invalid_grant", "kid is required")
    unknown = await post(http, emulator, grant_for(app, t, kid="not-registered"))
    assert_error(unknown, "invalid_grant", "MP-100")
    other_key = generate_jwk(app.settings.kid)
    forged = await post(http, emulator, grant_for(app, t, key=other_key))
    assert_error(forged, "invalid_grant", "MP-124")


async def test_client_without_keys_cannot_authenticate(
    http: httpx2.AsyncClient,
    emulator: EmulatorServer,
    app: AppClient,
    admin: Any,
    now: Callable[[], float],
) -> None:
    await admin.replace_jwks(app.client.client_id, [])
    response = await post(http, emulator, grant_for(app, now(), kid=""))
    assert_error(response, "invalid_grant", "MP-100")


async def test_x5c_and_bad_alg(
    http: httpx2.AsyncClient, emulator: EmulatorServer, app: AppClient, now: Callable[[], float]
) -> None:
    claims = {"aud": emulator.issuer, "iss": app.client.client_id, "scope": READ}
    x5c = jwt.encode(claims, private_key(app.key), "RS256", headers={"x5c": ["AAAA"]})
    assert_error(await post(http, emulator, x5c), "invalid_grant", "MP-123")
    both = jwt.encode(
        claims, private_key(app.key), "RS256", headers={"x5c": ["AAAA"], "kid": app.settings.kid}
    )
    assert_error(await post(http, emulator, both), "invalid_request", "MP-011")
    hs = jwt.encode(claims, "a-shared-secret-of-enough-length-0123456789", "HS256")
    assert_error(await post(http, emulator, hs), "invalid_grant", "MP-124")


async def test_key_expires_one_year_after_posting_and_reposting_renews(
    http: httpx2.AsyncClient,
    emulator: EmulatorServer,
    app: AppClient,
    admin: Any,
    now: Callable[[], float],
) -> None:
    emulator.state.clock.advance(YEAR - 60)
    assert (await post(http, emulator, grant_for(app, now()))).status_code == 200
    emulator.state.clock.advance(60)
    assert_error(await post(http, emulator, grant_for(app, now())), "invalid_grant", "MP-121")
    await admin.replace_jwks(app.client.client_id, [app.key])
    assert (await post(http, emulator, grant_for(app, now()))).status_code == 200


async def test_scope_not_allowed_for_integration_type(
    http: httpx2.AsyncClient, emulator: EmulatorServer, app: AppClient, now: Callable[[], float]
) -> None:
    # The scope's owner later restricts it to ID-porten clients.
    response = await http.post(
        emulator.url + "/test/scopes", json={"name": READ, "integration_types": ["idporten"]}
    )
    assert response.status_code == 201
    assert_error(await post(http, emulator, grant_for(app, now())), "invalid_scope", "MP-201")


async def test_inactive_client_is_not_in_maskinporten(
    http: httpx2.AsyncClient,
    emulator: EmulatorServer,
    app: AppClient,
    admin: Any,
    now: Callable[[], float],
) -> None:
    registration = app.client.model_copy(update={"active": False})
    await admin.update_client(app.client.client_id, registration)
    assert_error(await post(http, emulator, grant_for(app, now())), "invalid_grant", "MP-100")


async def test_resource_claim_sets_token_audience(
    http: httpx2.AsyncClient, emulator: EmulatorServer, app: AppClient, now: Callable[[], float]
) -> None:
    response = await post(http, emulator, grant_for(app, now(), resource=["https://api.example/"]))
    token = response.json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "https://api.example/"


async def test_counters_in_dump(
    http: httpx2.AsyncClient, emulator: EmulatorServer, app: AppClient, now: Callable[[], float]
) -> None:
    await post(http, emulator, grant_for(app, now()))
    await post(http, emulator, grant_for(app, now(), aud="x"))
    dump = (await http.get(emulator.url + "/test/dump")).json()
    assert dump["tokens_by_client"][app.client.client_id] == 1
    assert dump["counters"]["token_errors"] == 1
    assert dump["counters"]["token_error:invalid_grant"] == 1
