"""Async client of Digdir's self-service API, for the Maskinporten operator.

It authenticates as the supplier client with a Maskinporten token that is fetched once and reused
until shortly before it expires (not one token per call, a lesson from digdirator), retries
transient failures with backoff, and raises typed errors carrying Digdir's status and message.

Retries (:mod:`fjord.retry`): GET, PUT, DELETE and the JWKS replace are idempotent and are
retried on every transient failure. Creating a client is not idempotent, so it is retried only
when the request cannot have been processed (429, or a connection never made); after any other
failure the caller should look the client up by its deterministic name before creating again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self

import httpx2

from fjord.maskinporten.client import MaskinportenClient
from fjord.maskinporten.errors import UnavailableError, admin_error_from_response
from fjord.maskinporten.keys import generate_jwk, is_private, public_jwks
from fjord.maskinporten.registration import ClientRegistration, RegisteredClient
from fjord.maskinporten.secret_format import MaskinportenSettings
from fjord.retry import RetryPolicy, Sleep, may_retry_status, send_with_retries

# Key helpers are re-exported so the operator needs only this module.
__all__ = ["SelfServiceClient", "generate_jwk", "public_jwks"]


class SelfServiceClient:
    """The generic ``/clients`` API under ``api_base_url`` (e.g. https://api.samarbeid.digdir.no)."""

    def __init__(
        self,
        *,
        api_base_url: str,
        supplier: MaskinportenSettings,
        http: httpx2.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not supplier.scopes:
            raise ValueError("the supplier settings must list the admin scopes to request")
        self._base = api_base_url.rstrip("/")
        self._own_http = http is None
        self._http = http or httpx2.AsyncClient(timeout=timeout)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._scopes = supplier.scopes
        self.tokens = MaskinportenClient(
            supplier, http=self._http, retry=self._retry, clock=clock, sleep=sleep
        )

    # -- clients -------------------------------------------------------------------------------

    async def list_clients(self) -> list[RegisteredClient]:
        body = await self._call("GET", "/clients")
        return [RegisteredClient.model_validate(c) for c in body]

    async def get_client(self, client_id: str) -> RegisteredClient:
        return RegisteredClient.model_validate(await self._call("GET", f"/clients/{client_id}"))

    async def create_client(self, registration: ClientRegistration) -> RegisteredClient:
        body = await self._call(
            "POST", "/clients", json=registration.request_body(), idempotent=False
        )
        return RegisteredClient.model_validate(body)

    async def update_client(
        self, client_id: str, registration: ClientRegistration
    ) -> RegisteredClient:
        body = await self._call("PUT", f"/clients/{client_id}", json=registration.request_body())
        return RegisteredClient.model_validate(body)

    async def delete_client(self, client_id: str) -> None:
        await self._call("DELETE", f"/clients/{client_id}")

    # -- keys ----------------------------------------------------------------------------------

    async def get_jwks(self, client_id: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._call("GET", f"/clients/{client_id}/jwks")
        return body

    async def replace_jwks(
        self, client_id: str, keys: Iterable[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Replace the client's whole key set with the public halves of ``keys``."""
        key_list = list(keys)
        # Strip private members here as well: a private key must never leave the cluster.
        body = public_jwks(key_list) if any(is_private(k) for k in key_list) else {"keys": key_list}
        result: dict[str, Any] = await self._call("POST", f"/clients/{client_id}/jwks", json=body)
        return result

    # -- transport -----------------------------------------------------------------------------

    async def _call(
        self, method: str, path: str, *, json: Any = None, idempotent: bool = True
    ) -> Any:
        requests = 0
        refreshed = False

        async def attempt() -> httpx2.Response:
            nonlocal requests, refreshed
            while True:
                requests += 1
                token = await self.tokens.get_token(self._scopes)
                headers = {"Authorization": token.authorization, "Accept": "application/json"}
                response = await self._http.request(
                    method, self._base + path, json=json, headers=headers
                )
                if response.status_code != 401 or refreshed:
                    return response
                # The cached token may have been revoked or expired early: one fresh try.
                refreshed = True
                self.tokens.invalidate(self._scopes)

        try:
            response = await send_with_retries(
                attempt, self._retry, idempotent=idempotent, sleep=self._sleep, clock=self._clock
            )
        except httpx2.TransportError as exc:
            raise UnavailableError(
                f"{method} {path} failed after {requests} request(s): {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code < 400:
            return response.json() if response.content else None
        if may_retry_status(response.status_code, idempotent=idempotent):  # retried, gave up
            raise UnavailableError(
                f"{method} {path} failed after {requests} request(s): HTTP {response.status_code}",
                response.status_code,
            )
        raise admin_error_from_response(response.status_code, _body(response))

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _body(response: httpx2.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
