"""The OpenID provider as a client sees it: discovery, the authorization code flow with PKCE,
refresh, and ID token verification against the provider's JWKS.

authlib builds the protocol messages (PKCE challenge, authorization URL, token requests) and
its joserfc verifies the JWTs; httpx2 carries them. Discovery and the JWKS are cached; an ID
token signed with a key id the cache does not know fetches the JWKS again (at most every
:data:`JWKS_MIN_REFRESH` seconds), so the provider may rotate its keys.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx2
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from fjord.control.errors import UnauthenticatedError, UnavailableError
from fjord.control.settings import OidcSettings

log = logging.getLogger(__name__)

JWKS_MIN_REFRESH = 30.0
ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA")
LEEWAY_SECONDS = 30
_ATTEMPTS = 3


class ProviderUnavailableError(UnavailableError):
    """The OpenID provider did not answer (after retries) or answered nonsense."""


@dataclass(frozen=True)
class Identity:
    """A verified ID token's caller."""

    issuer: str
    subject: str
    name: str
    groups: tuple[str, ...]
    expires_at: float


@dataclass(frozen=True)
class TokenSet:
    id_token: str
    refresh_token: str | None
    expires_at: float  # the ID token's own expiry (epoch seconds)


@dataclass(frozen=True)
class Flow:
    """One sign-in attempt's secrets, kept by the client until the provider redirects back."""

    state: str
    nonce: str
    verifier: str


def new_flow() -> Flow:
    return Flow(state=generate_token(32), nonce=generate_token(32), verifier=generate_token(64))


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload without checking the signature: only to route a token to its verifier."""
    try:
        payload = json.loads(jws.extract_compact(token.encode()).payload)
    except (JoseError, ValueError):
        return {}
    return payload if isinstance(payload, dict) else {}


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith("fjt_")


class Provider:
    def __init__(self, settings: OidcSettings, *, timeout: float = 10.0) -> None:
        self.settings = settings
        self._timeout = timeout
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    async def _get_json(self, url: str) -> dict[str, Any]:
        delay = 0.2
        for attempt in range(_ATTEMPTS):
            try:
                async with httpx2.AsyncClient(timeout=self._timeout) as client:
                    response = await client.get(url)
                if response.status_code < 500:
                    response.raise_for_status()
                    body = response.json()
                    if isinstance(body, dict):
                        return body
                    raise ProviderUnavailableError(f"{url} did not return a JSON object")
            except (httpx2.HTTPError, ValueError) as exc:
                if attempt == _ATTEMPTS - 1:
                    raise ProviderUnavailableError(
                        f"the OpenID provider at {self.issuer} is unreachable: {exc}",
                        hint="check FJORD_OIDC_ISSUER and that the provider runs",
                    ) from exc
            await asyncio.sleep(delay)
            delay *= 2
        raise ProviderUnavailableError(f"{url} kept failing")

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            found = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if found.get("issuer", "").rstrip("/") != self.issuer:
                raise ProviderUnavailableError(
                    f"the provider says its issuer is {found.get('issuer')!r}, not {self.issuer!r}",
                    hint="FJORD_OIDC_ISSUER must be exactly the provider's issuer URL",
                )
            self._metadata = found
        return self._metadata

    async def _key_set(self, *, refresh: bool = False) -> KeySet:
        async with self._lock:
            stale = refresh and time.monotonic() - self._keys_at > JWKS_MIN_REFRESH
            if self._keys is None or stale:
                meta = await self.metadata()
                self._keys = KeySet.import_key_set(await self._get_json(meta["jwks_uri"]))  # type: ignore[arg-type]
                self._keys_at = time.monotonic()
            return self._keys

    async def verify(
        self, token: str, *, nonce: str | None = None, audiences: Sequence[str] | None = None
    ) -> Identity:
        """The caller of a valid ID token of this issuer for one of ``audiences``; else
        :class:`UnauthenticatedError` naming what is wrong."""
        claims = unverified_claims(token)
        if not claims:
            raise UnauthenticatedError("the bearer token is not a JWT")
        if str(claims.get("iss", "")).rstrip("/") != self.issuer:
            raise UnauthenticatedError(
                f"the token was issued by {claims.get('iss')!r}, not by {self.issuer}",
                hint="sign in again against this server's provider: fjord login SERVER",
            )
        keys = await self._key_set()
        try:
            decoded = jwt.decode(token, keys, algorithms=list(ALGORITHMS))
        except JoseError:
            keys = await self._key_set(refresh=True)  # a rotated key, perhaps
            try:
                decoded = jwt.decode(token, keys, algorithms=list(ALGORITHMS))
            except JoseError as exc:
                raise UnauthenticatedError(f"the ID token's signature is not valid: {exc}") from exc
        registry = JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": str(decoded.claims.get("iss"))},
            aud={"essential": True, "values": list(audiences or self.settings.audiences)},
            sub={"essential": True},
            exp={"essential": True},
        )
        if nonce is not None and decoded.claims.get("nonce") != nonce:
            raise UnauthenticatedError("the ID token's nonce does not match this sign-in")
        try:
            registry.validate(decoded.claims)
        except JoseError as exc:
            raise UnauthenticatedError(
                f"the ID token is not acceptable: {exc.description or exc.error}",
                hint="an expired token is refreshed by fjord login / a new sign-in",
            ) from exc
        return self._identity(decoded.claims)

    def _identity(self, claims: dict[str, Any]) -> Identity:
        raw = claims.get(self.settings.groups_claim) or []
        groups = tuple(str(g) for g in raw) if isinstance(raw, list) else (str(raw),)
        subject = str(claims["sub"])
        name = str(claims.get("preferred_username") or claims.get("name") or subject)
        return Identity(self.issuer, subject, name, groups, float(claims["exp"]))

    async def authorization_url(self, flow: Flow, redirect_uri: str, client_id: str) -> str:
        meta = await self.metadata()
        url: str = prepare_grant_uri(
            meta["authorization_endpoint"],
            client_id,
            "code",
            redirect_uri,
            " ".join(self.settings.scopes),
            flow.state,
            code_challenge=create_s256_code_challenge(flow.verifier),
            code_challenge_method="S256",
            nonce=flow.nonce,
        )
        return url

    async def _token_request(self, body: str, client_id: str, secret: str | None) -> TokenSet:
        meta = await self.metadata()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if secret:  # client_secret_basic, which every provider supports
            basic = base64.b64encode(f"{quote(client_id)}:{quote(secret)}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        try:
            async with httpx2.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(meta["token_endpoint"], content=body, headers=headers)
        except httpx2.HTTPError as exc:
            raise ProviderUnavailableError(f"the provider's token endpoint failed: {exc}") from exc
        if response.status_code >= 400:
            raise UnauthenticatedError(
                f"the provider refused the token request: {response.status_code}"
                f" {response.text[:300]}",
                hint="sign in again",
            )
        data = response.json()
        if "id_token" not in data:
            raise UnauthenticatedError("the provider returned no ID token (is openid a scope?)")
        id_token = str(data["id_token"])
        exp = unverified_claims(id_token).get("exp")
        expires_at = float(exp) if exp else time.time() + float(data.get("expires_in", 300))
        return TokenSet(id_token, data.get("refresh_token"), expires_at)

    async def exchange(
        self, code: str, flow: Flow, redirect_uri: str, client_id: str, secret: str | None
    ) -> TokenSet:
        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=flow.verifier,
            client_id=client_id,
        )
        return await self._token_request(body, client_id, secret)

    async def refresh(self, refresh_token: str, client_id: str, secret: str | None) -> TokenSet:
        body = prepare_token_request(
            "refresh_token", refresh_token=refresh_token, client_id=client_id
        )
        return await self._token_request(body, client_id, secret)
