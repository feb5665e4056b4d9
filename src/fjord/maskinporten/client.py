"""Maskinporten token client for apps.

Reads its settings from a mounted Secret (reloaded when Kubernetes swaps it) or from the
environment, signs a JWT-bearer grant with a fresh ``jti`` per request, caches tokens per scope
set until shortly before expiry, lets exactly one refresh per scope set be in flight, and retries
transient failures (:mod:`fjord.retry`) with backoff that honours Retry-After, within a deadline.

    async with MaskinportenClient.from_directory("/mnt/app-secrets") as mp:
        token = await mp.get_token(["altinn:serviceowner"])
        headers = {"Authorization": token.authorization}
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx2
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from fjord.maskinporten.errors import (
    MaskinportenError,
    SettingsError,
    UnavailableError,
    token_error_from_body,
)
from fjord.maskinporten.grant import DEFAULT_GRANT_LIFETIME, build_grant, private_key
from fjord.maskinporten.registration import JWT_BEARER
from fjord.maskinporten.secret_format import MaskinportenSettings
from fjord.maskinporten.settings_source import SecretDirectory, SettingsSource, StaticSettings
from fjord.retry import RetryPolicy, Sleep, is_transient_status, send_with_retries

ScopeKey = tuple[str, ...]


@dataclass(frozen=True)
class AccessToken:
    access_token: str
    token_type: str
    scope: str
    expires_in: int
    expires_at: float  # on the client's clock

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value."""
        return f"Bearer {self.access_token}"


class MaskinportenClient:
    """Async Maskinporten token client; share one instance per app."""

    def __init__(
        self,
        settings: MaskinportenSettings | SettingsSource,
        *,
        http: httpx2.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        refresh_margin: float = 30.0,
        grant_lifetime: int = DEFAULT_GRANT_LIFETIME,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._source: SettingsSource = (
            StaticSettings(settings) if isinstance(settings, MaskinportenSettings) else settings
        )
        self._own_http = http is None
        self._http = http or httpx2.AsyncClient(timeout=timeout)
        self._retry = retry or RetryPolicy()
        self._margin = refresh_margin
        self._grant_lifetime = grant_lifetime
        self._clock = clock
        self._sleep = sleep
        self._settings: MaskinportenSettings | None = None
        self._key: tuple[MaskinportenSettings, RSAPrivateKey] | None = None
        self._cache: dict[ScopeKey, AccessToken] = {}
        self._locks: dict[ScopeKey, asyncio.Lock] = {}
        self.token_requests = 0  # HTTP calls to the token endpoint, retries included

    @classmethod
    def from_directory(
        cls, path: str | os.PathLike[str], *, check_interval: float = 1.0, **kwargs: Any
    ) -> MaskinportenClient:
        """Settings from a mounted Secret, re-read when it changes."""
        return cls(SecretDirectory(path, check_interval=check_interval), **kwargs)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **kwargs: Any
    ) -> MaskinportenClient:
        """Settings from the ``MASKINPORTEN_*`` environment variables."""
        return cls(MaskinportenSettings.from_env(environ), **kwargs)

    @property
    def settings(self) -> MaskinportenSettings:
        return self._current_settings()

    async def get_token(self, scopes: Iterable[str] | None = None) -> AccessToken:
        """A valid token for ``scopes`` (default: the scopes in the settings)."""
        settings = self._current_settings()
        key = self._scope_key(settings, scopes)
        cached = self._cache.get(key)
        if cached is not None and self._fresh(cached):
            return cached
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            # Whoever held the lock before us may have refreshed already.
            cached = self._cache.get(key)
            if cached is not None and self._fresh(cached):
                return cached
            token = await self._fetch(settings, key)
            if settings is self._settings:  # not superseded by a reload meanwhile
                self._cache[key] = token
            return token

    async def get_access_token(self, scopes: Iterable[str] | None = None) -> str:
        return (await self.get_token(scopes)).access_token

    def invalidate(self, scopes: Iterable[str] | None = None) -> None:
        """Forget a cached token (all of them if ``scopes`` is None), e.g. after a 401."""
        if scopes is None:
            self._cache.clear()
        else:
            self._cache.pop(tuple(sorted(set(scopes))), None)

    # -- internals -----------------------------------------------------------------------------

    def _current_settings(self) -> MaskinportenSettings:
        settings = self._source.current()
        if settings is not self._settings:
            # New client id, key or endpoint: tokens of the old settings must not be served.
            self._settings = settings
            self._cache.clear()
        return settings

    @staticmethod
    def _scope_key(settings: MaskinportenSettings, scopes: Iterable[str] | None) -> ScopeKey:
        chosen = tuple(sorted(set(settings.scopes if scopes is None else scopes)))
        if not chosen:
            raise SettingsError("no scopes requested and none in the Maskinporten settings")
        return chosen

    def _fresh(self, token: AccessToken) -> bool:
        margin = min(self._margin, token.expires_in / 2)
        return self._clock() < token.expires_at - margin

    def _signing_key(self, settings: MaskinportenSettings) -> RSAPrivateKey:
        if self._key is None or self._key[0] is not settings:
            self._key = (settings, private_key(settings.jwk))
        return self._key[1]

    async def _fetch(self, settings: MaskinportenSettings, scopes: ScopeKey) -> AccessToken:
        requested_at = self._clock()
        attempts = 0

        async def attempt() -> httpx2.Response:
            nonlocal requested_at, attempts
            attempts += 1
            requested_at = self._clock()
            grant = build_grant(  # a fresh jti every attempt: a grant is single-use
                client_id=settings.client_id,
                key=self._signing_key(settings),
                kid=settings.kid,
                audience=settings.issuer,
                scopes=scopes,
                now=requested_at,
                lifetime=self._grant_lifetime,
            )
            self.token_requests += 1
            return await self._http.post(
                settings.token_endpoint,
                data={"grant_type": JWT_BEARER, "assertion": grant},
                headers={"Accept": "application/json"},
            )

        where = f"token endpoint {settings.token_endpoint}"
        try:
            response = await send_with_retries(
                attempt, self._retry, sleep=self._sleep, clock=self._clock
            )
        except httpx2.TransportError as exc:
            raise UnavailableError(
                f"{where} failed {attempts} time(s): {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code == 200:
            return _parse_token(response, requested_at)
        if is_transient_status(response.status_code):
            raise UnavailableError(
                f"{where} failed {attempts} time(s): HTTP {response.status_code}",
                response.status_code,
            )
        raise token_error_from_body(response.status_code, _json_or_empty(response))

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


def _json_or_empty(response: httpx2.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"error": f"http_{response.status_code}", "error_description": response.text[:200]}
    return body if isinstance(body, dict) else {}


def _parse_token(response: httpx2.Response, requested_at: float) -> AccessToken:
    try:
        body = response.json()
        expires_in = int(body["expires_in"])
        return AccessToken(
            access_token=str(body["access_token"]),
            token_type=str(body.get("token_type", "Bearer")),
            scope=str(body.get("scope", "")),
            expires_in=expires_in,
            # Counted from before the request: the token cannot outlive that.
            expires_at=requested_at + expires_in,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise MaskinportenError(f"unreadable token response: {exc}") from exc
