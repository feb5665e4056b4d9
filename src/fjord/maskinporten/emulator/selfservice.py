"""The self-service (client registration) API: ``/clients`` and the Altinn admin variant.

Both variants share the rules; a ``Variant`` holds what differs (path prefix, required scopes,
Altinn's quirks such as a single-client GET that answers 500). Status codes are the ones the
reference records as real: create 201, delete 204, JWKS replace 201.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from fjord.maskinporten.emulator.admin_auth import Caller, authenticate
from fjord.maskinporten.emulator.api_errors import ApiError, bad_request
from fjord.maskinporten.emulator.config import (
    ADMIN_SCOPES,
    DCR_ALTINN,
    DCR_MODIFY,
    DCR_READ,
    DCR_SUPPLIER,
    DCR_WRITE,
)
from fjord.maskinporten.emulator.state import EmulatorState, StoredClient, iso
from fjord.maskinporten.registration import (
    ClientRegistration,
    Problem,
    jwks_problems,
    registration_problems,
)

_SECRET_METHODS = ("client_secret_post", "client_secret_basic")


@dataclass(frozen=True)
class Variant:
    """What differs between the generic API and Altinn's admin API."""

    prefix: str
    read: frozenset[str]  # any one of these allows reading
    modify: frozenset[str]  # … updating clients and replacing keys
    write: frozenset[str]  # … creating and deleting clients
    supplier: frozenset[str]  # … registering clients for other orgs
    missing_scope_status: int
    single_get_broken: bool


GENERIC = Variant(
    prefix="",
    read=frozenset({DCR_READ, DCR_MODIFY, DCR_WRITE}),
    modify=frozenset({DCR_MODIFY, DCR_WRITE}),
    write=frozenset({DCR_WRITE}),
    supplier=frozenset({DCR_SUPPLIER}),
    missing_scope_status=403,
    single_get_broken=False,
)
ALTINN = Variant(
    prefix="/api/v1/altinn/admin",
    read=frozenset({DCR_ALTINN}),
    modify=frozenset({DCR_ALTINN}),
    write=frozenset({DCR_ALTINN}),
    supplier=frozenset({DCR_ALTINN}),
    missing_scope_status=401,  # Altinn's fake answers 401 for a token without the scope
    single_get_broken=True,
)


class SelfService:
    """The API's operations on an ``EmulatorState``; each returns a response or raises ApiError."""

    def __init__(self, state: EmulatorState, variant: Variant) -> None:
        self.state = state
        self.variant = variant

    # -- auth ----------------------------------------------------------------------------------

    def caller(self, request: Request, needs: frozenset[str]) -> Caller:
        caller = authenticate(self.state, request.headers.get("authorization"), self.now())
        if not caller.has_any(needs):
            raise ApiError(
                self.variant.missing_scope_status,
                "insufficient_scope",
                f"the access token needs one of the scopes {', '.join(sorted(needs))}",
            )
        return caller

    def now(self) -> float:
        return self.state.clock.now()

    def visible(self, caller: Caller, client_id: str) -> StoredClient:
        with self.state.lock:
            client = self.state.clients.get(client_id)
        if client is None or client.bootstrap or caller.orgno not in _owners(client):
            raise ApiError(404, "not_found", f"client {client_id} not found")
        return client

    # -- clients -------------------------------------------------------------------------------

    def list_clients(self, caller: Caller) -> list[dict[str, Any]]:
        with self.state.lock:
            clients = list(self.state.clients.values())
        return [_view(c) for c in clients if not c.bootstrap and caller.orgno in _owners(c)]

    def create(self, caller: Caller, body: Any) -> dict[str, Any]:
        reg = self._registration(caller, body)
        now = self.now()
        with self.state.lock:
            client_id = reg.client_id or self.state.new_uuid()
            if client_id in self.state.clients:
                raise ApiError(409, "conflict", f"client_id {client_id} is already registered")
            data = reg.model_dump(mode="json", exclude_none=True)
            data.update(
                client_id=client_id,
                created=iso(now),
                last_updated=iso(now),
                jwks_uri="",
            )
            if caller.has_any(self.variant.supplier):
                data["supplier_orgno"] = caller.orgno
            client = StoredClient(data=data)
            if reg.token_endpoint_auth_method in _SECRET_METHODS:
                client.client_secret = self.state.new_secret()
            self.state.clients[client_id] = client
            # The secret is shown in clear once, in the create response.
            return {**_view(client), **_secret(client)}

    def update(self, caller: Caller, client_id: str, body: Any) -> dict[str, Any]:
        client = self.visible(caller, client_id)
        reg = self._registration(caller, body)
        if reg.client_id is not None and reg.client_id != client_id:
            raise bad_request("client_id in the body differs from the path")
        if reg.integration_type != client.data.get("integration_type"):
            problem = Problem("integration_type is immutable", "integration_type")
            raise bad_request("integration_type cannot be changed", [problem])
        with self.state.lock:
            data = reg.model_dump(mode="json", exclude_none=True)
            for kept in ("client_id", "created", "supplier_orgno", "jwks_uri"):
                if kept in client.data:
                    data[kept] = client.data[kept]
            data["last_updated"] = iso(self.now())
            client.data = data
            # Moving away from client_secret_* deletes the secret; moving to it creates one.
            if reg.token_endpoint_auth_method not in _SECRET_METHODS:
                client.client_secret = None
            elif client.client_secret is None:
                client.client_secret = self.state.new_secret()
                return {**_view(client), **_secret(client)}
            return _view(client)

    def delete(self, caller: Caller, client_id: str) -> None:
        self.visible(caller, client_id)
        with self.state.lock:
            self.state.clients.pop(client_id, None)

    def rotate_secret(self, caller: Caller, client_id: str) -> dict[str, Any]:
        client = self.visible(caller, client_id)
        with self.state.lock:
            if client.data.get("token_endpoint_auth_method") not in _SECRET_METHODS:
                raise bad_request("the client does not authenticate with a client secret")
            client.client_secret = self.state.new_secret()
            client.data["last_updated"] = iso(self.now())
            return {**_view(client), **_secret(client)}

    def _registration(self, caller: Caller, body: Any) -> ClientRegistration:
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        try:
            reg = ClientRegistration.model_validate(body)
        except ValidationError as exc:
            problems = [Problem(e["msg"], ".".join(str(p) for p in e["loc"])) for e in exc.errors()]
            raise bad_request("invalid client", problems) from exc
        problems = registration_problems(reg)
        if problems:
            raise bad_request("invalid client", problems)
        if reg.client_orgno != caller.orgno and not caller.has_any(self.variant.supplier):
            raise ApiError(
                403,
                "forbidden",
                f"client_orgno must be {caller.orgno} unless the caller has {DCR_SUPPLIER}",
            )
        problems = self._scope_problems(reg)
        if problems:
            raise bad_request("invalid scopes", problems)
        return reg

    def _scope_problems(self, reg: ClientRegistration) -> list[Problem]:
        problems = []
        orgno = reg.client_orgno or ""
        for name in reg.scopes:
            definition = self.state.scope(name)
            if name in ADMIN_SCOPES:
                problems.append(
                    Problem(f"scope {name} cannot be registered through the API", "scopes")
                )
            elif definition is None:
                problems.append(Problem(f"scope {name} does not exist", "scopes"))
            elif not definition.accessible_by(orgno):
                problems.append(Problem(f"org {orgno} has no access to scope {name}", "scopes"))
            elif (
                definition.integration_types
                and reg.integration_type not in definition.integration_types
            ):
                problems.append(
                    Problem(f"scope {name} is not allowed for {reg.integration_type}", "scopes")
                )
        return problems

    # -- keys ----------------------------------------------------------------------------------

    def get_jwks(self, caller: Caller, client_id: str) -> dict[str, Any]:
        return _jwks_view(self.visible(caller, client_id))

    def replace_jwks(self, caller: Caller, client_id: str, body: Any) -> dict[str, Any]:
        client = self.visible(caller, client_id)
        problems = jwks_problems(body)
        if problems:
            raise bad_request("invalid JWKS", problems)
        keys: list[dict[str, Any]] = [dict(k) for k in body["keys"]]
        with self.state.lock:
            for key in keys:
                owner = self.state.kid_owner(str(key["kid"]))
                if owner is not None and owner is not client:
                    raise ApiError(409, "conflict", f"kid {key['kid']} is used by another client")
            self.state.replace_keys(client, keys, self.now())
            client.data["last_updated"] = iso(self.now())
            return _jwks_view(client)


def _owners(client: StoredClient) -> set[str]:
    return {
        str(o) for o in (client.data.get("client_orgno"), client.data.get("supplier_orgno")) if o
    }


def _view(client: StoredClient) -> dict[str, Any]:
    return dict(client.data)


def _secret(client: StoredClient) -> dict[str, Any]:
    return {"client_secret": client.client_secret} if client.client_secret else {}


def _jwks_view(client: StoredClient) -> dict[str, Any]:
    view: dict[str, Any] = {"keys": [k.public_view() for k in client.keys]}
    if client.jwks_created is not None:
        view["created"] = iso(client.jwks_created)
    if client.jwks_updated is not None:
        view["last_updated"] = iso(client.jwks_updated)
    return view


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise bad_request(f"the body is not JSON: {exc}") from exc


def selfservice_router(state: EmulatorState, variant: Variant) -> APIRouter:
    """Routes of one API variant under its prefix."""
    api = SelfService(state, variant)
    router = APIRouter(prefix=variant.prefix)
    v = variant

    @router.get("/clients")
    async def list_clients(request: Request) -> JSONResponse:
        return JSONResponse(api.list_clients(api.caller(request, v.read)))

    @router.post("/clients")
    async def create_client(request: Request) -> JSONResponse:
        caller = api.caller(request, v.write)
        return JSONResponse(api.create(caller, await _json(request)), status_code=201)

    @router.get("/clients/{client_id}")
    async def get_client(request: Request, client_id: str) -> JSONResponse:
        caller = api.caller(request, v.read)
        if v.single_get_broken:
            raise ApiError(500, "internal_error", "single-client GET is not usable; list instead")
        return JSONResponse(_view(api.visible(caller, client_id)))

    @router.put("/clients/{client_id}")
    async def update_client(request: Request, client_id: str) -> JSONResponse:
        caller = api.caller(request, v.modify)
        return JSONResponse(api.update(caller, client_id, await _json(request)))

    @router.delete("/clients/{client_id}")
    async def delete_client(request: Request, client_id: str) -> Response:
        api.delete(api.caller(request, v.write), client_id)
        return Response(status_code=204)

    @router.post("/clients/{client_id}/secret")
    async def rotate_secret(request: Request, client_id: str) -> JSONResponse:
        return JSONResponse(api.rotate_secret(api.caller(request, v.modify), client_id))

    @router.get("/clients/{client_id}/jwks")
    async def get_jwks(request: Request, client_id: str) -> JSONResponse:
        return JSONResponse(api.get_jwks(api.caller(request, v.read), client_id))

    # POST and PUT are equivalent: both replace the whole key set.
    @router.api_route("/clients/{client_id}/jwks", methods=["POST", "PUT"])
    async def replace_jwks(request: Request, client_id: str) -> JSONResponse:
        caller = api.caller(request, v.modify)
        body = await _json(request)
        return JSONResponse(api.replace_jwks(caller, client_id, body), status_code=201)

    return router
