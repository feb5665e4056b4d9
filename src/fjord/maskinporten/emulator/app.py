"""The emulator's ASGI app: token endpoint, metadata, JWKS, self-service API and test hooks."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from fjord.maskinporten.emulator.api_errors import ApiError, error_response
from fjord.maskinporten.emulator.faults import fault_middleware
from fjord.maskinporten.emulator.grants import OAuthError, issue_token, validate_grant
from fjord.maskinporten.emulator.selfservice import ALTINN, GENERIC, selfservice_router
from fjord.maskinporten.emulator.state import EmulatorState
from fjord.maskinporten.emulator.test_routes import test_router
from fjord.maskinporten.keys import SIGNING_ALGORITHMS
from fjord.maskinporten.registration import JWT_BEARER

WELL_KNOWN_PATH = "/.well-known/oauth-authorization-server"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that hung up before the answer


def metadata(state: EmulatorState) -> dict[str, Any]:
    """RFC 8414 authorization server metadata, as Maskinporten publishes it."""
    base = state.config.endpoint_base
    return {
        "issuer": state.config.issuer,
        "token_endpoint": base + "token",
        "jwks_uri": base + "jwk",
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "grant_types_supported": [JWT_BEARER],
        "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGORITHMS),
    }


def create_app(state: EmulatorState) -> FastAPI:
    """An app serving one emulator ``state``; all mutable state lives in that object."""
    app = FastAPI(title="fjord Maskinporten emulator", docs_url=None, redoc_url=None)
    app.middleware("http")(fault_middleware(state))

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(state, exc)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(_: Request, __: ClientDisconnect) -> Response:
        # The client hung up while sending its body (e.g. an operator killed by a test): no
        # fault of the emulator's, so no traceback; nobody reads this answer. Counted for tests.
        with state.lock:
            state.counters["client_disconnects"] += 1
        return Response(status_code=CLIENT_CLOSED_REQUEST)

    @app.get(WELL_KNOWN_PATH)
    async def well_known() -> dict[str, Any]:
        return metadata(state)

    @app.get("/jwk")
    async def jwks() -> dict[str, Any]:
        return state.signing_key.public_jwks()

    @app.post("/token")
    async def token(request: Request) -> JSONResponse:
        # Altinn's operator sends the parameters in the query string with an empty body, so
        # accept both; the form body wins when a parameter is in both.
        params = dict(request.query_params)
        body = (await request.body()).decode("utf-8", errors="replace")
        params.update(parse_qsl(body, keep_blank_values=True))
        now = state.clock.now()
        with state.lock:
            state.counters["token_requests"] += 1
        try:
            grant = validate_grant(state, params, now)
        except OAuthError as exc:
            with state.lock:
                state.counters["token_errors"] += 1
                state.counters[f"token_error:{exc.error}"] += 1
            return JSONResponse(exc.body(), status_code=exc.status, headers=_NO_STORE)
        return JSONResponse(issue_token(state, grant, now), headers=_NO_STORE)

    app.include_router(selfservice_router(state, GENERIC))
    app.include_router(selfservice_router(state, ALTINN))
    app.include_router(test_router(state))
    return app
