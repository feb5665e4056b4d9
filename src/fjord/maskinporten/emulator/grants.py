"""The token endpoint's rules: validate a JWT-bearer grant, then issue an access token.

Checks run in the order Maskinporten reports them: request shape, header, client and key,
signature, then claims, replay and scopes. Each failure is an ``OAuthError`` carrying the OAuth
``error`` and Digdir's ``MP-nnn`` code in the description (reference section 3).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import RSAAlgorithm

from fjord.maskinporten.emulator.config import IAT_SKEW_SECONDS, MAX_GRANT_LIFETIME_SECONDS
from fjord.maskinporten.emulator.state import EmulatorState, StoredClient
from fjord.maskinporten.keys import SIGNING_ALGORITHMS
from fjord.maskinporten.registration import JWT_BEARER


class OAuthError(Exception):
    """An OAuth error response: ``{"error": ..., "error_description": ...}``."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def _grant(code: str, text: str) -> OAuthError:
    return OAuthError("invalid_grant", f"{code} {text}".strip())


@dataclass(frozen=True)
class Grant:
    """A grant that passed every check."""

    client: StoredClient
    scopes: list[str]
    resource: list[str]


def validate_grant(state: EmulatorState, params: dict[str, str], now: float) -> Grant:
    grant_type = params.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "MP-011 Missing parameter grant_type")
    if grant_type != JWT_BEARER:
        raise OAuthError("unsupported_grant_type", f"MP-011 grant_type must be {JWT_BEARER}")
    assertion = params.get("assertion")
    if not assertion:
        raise OAuthError("invalid_request", "MP-011 Missing parameter assertion")
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except (jwt.PyJWTError, RecursionError) as exc:  # RecursionError: JSON nested too deeply
        raise OAuthError("invalid_request", f"MP-011 Invalid assertion: {exc}") from exc

    alg = header.get("alg")
    if alg not in SIGNING_ALGORITHMS:
        raise _grant(
            "MP-124", f"Invalid signature: alg must be one of {', '.join(SIGNING_ALGORITHMS)}"
        )
    kid, x5c = header.get("kid"), header.get("x5c")
    if kid and x5c:
        raise OAuthError(
            "invalid_request", "MP-011 The grant header must have kid or x5c, not both"
        )

    client = _client(state, unverified.get("iss"))
    claims = _verify_signature(state, client, assertion, alg, kid, x5c, now)
    _check_times(claims, now)
    _check_replay(state, client, claims, assertion, now)
    scopes = _check_scopes(state, client, claims)
    resource = claims.get("resource") or []
    return Grant(
        client=client,
        scopes=scopes,
        resource=[resource] if isinstance(resource, str) else list(resource),
    )


def _client(state: EmulatorState, iss: Any) -> StoredClient:
    if not isinstance(iss, str) or not iss:
        raise _grant("MP-100", "Invalid assertion. Client authentication failed: iss is missing")
    with state.lock:
        client = state.clients.get(iss)
    if client is None or not client.data.get("active", True):
        raise _grant(
            "MP-100", f"Invalid assertion. Client authentication failed: unknown client {iss}"
        )
    return client


def _verify_signature(
    state: EmulatorState,
    client: StoredClient,
    assertion: str,
    alg: str,
    kid: Any,
    x5c: Any,
    now: float,
) -> dict[str, Any]:
    if x5c:
        # Business certificates (virksomhetssertifikat) are not emulated.
        raise _grant(
            "MP-123", "Invalid x5c: certificate-based grants are not supported by the emulator"
        )
    if not kid:
        if client.keys:
            raise _grant(
                "MP-100", "Invalid assertion. Client authentication failed: kid is required"
            )
        raise _grant(
            "MP-100", "Invalid assertion. Client authentication failed: client has no keys"
        )
    with state.lock:
        key = client.key(str(kid))
    if key is None:
        raise _grant(
            "MP-100", f"Invalid assertion. Client authentication failed: unknown kid {kid}"
        )
    if now >= key.expires:
        raise _grant("MP-121", f"Expired key: kid {kid} expired")
    if key.jwk.get("alg") and key.jwk["alg"] != alg:
        raise _grant("MP-124", f"Invalid signature: kid {kid} is registered for {key.jwk['alg']}")
    try:  # registered keys are checked on upload; a key from before those rules may not load
        public = RSAAlgorithm.from_jwk(json.dumps(key.jwk))
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise _grant("MP-124", f"Invalid signature: kid {kid} is not a usable key") from exc
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            public,  # type: ignore[arg-type]
            algorithms=[alg],
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except jwt.InvalidSignatureError as exc:
        raise _grant("MP-124", "Invalid signature") from exc
    except jwt.PyJWTError as exc:
        raise OAuthError("invalid_request", f"MP-011 Invalid assertion: {exc}") from exc
    if claims.get("aud") != state.config.issuer:
        raise _grant("MP-110", f"Invalid audience: expected {state.config.issuer}")
    return claims


def _check_times(claims: dict[str, Any], now: float) -> None:
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int | float):
        raise OAuthError("invalid_request", "MP-011 Missing or invalid iat")
    if not isinstance(exp, int | float):
        raise OAuthError("invalid_request", "MP-011 Missing or invalid exp")
    if iat > now + IAT_SKEW_SECONDS:
        raise _grant("", "Issue time is after now")
    if iat < now - IAT_SKEW_SECONDS:
        raise _grant("MP-130", f"JWT expired: iat is more than {IAT_SKEW_SECONDS} s in the past")
    if exp - iat > MAX_GRANT_LIFETIME_SECONDS:
        raise _grant("MP-130", f"Invalid JWT: exp - iat exceeds {MAX_GRANT_LIFETIME_SECONDS} s")
    if exp <= now - IAT_SKEW_SECONDS or exp <= iat:
        raise _grant("MP-130", "JWT expired")


def _check_replay(
    state: EmulatorState, client: StoredClient, claims: dict[str, Any], assertion: str, now: float
) -> None:
    # Without a jti the whole assertion identifies the grant: it still must not be replayed.
    jti = str(claims.get("jti") or assertion)
    forget_after = (
        max(float(claims["exp"]), float(claims["iat"]) + IAT_SKEW_SECONDS) + IAT_SKEW_SECONDS
    )
    if not state.use_grant(client.client_id, jti, forget_after, now):
        raise _grant("MP-012", "Grant reused: a JWT grant can only be used once")


def _check_scopes(state: EmulatorState, client: StoredClient, claims: dict[str, Any]) -> list[str]:
    raw = claims.get("scope")
    scopes = raw.split() if isinstance(raw, str) else []
    if not scopes:
        raise OAuthError("invalid_scope", "MP-200 Missing scope")
    registered = set(client.scopes)
    integration = client.data.get("integration_type")
    for name in scopes:
        if name not in registered:
            raise OAuthError(
                "invalid_scope", f"MP-200 Scope {name} is not registered on the client"
            )
        definition = state.scope(name)
        if definition is None:
            raise OAuthError("invalid_scope", f"MP-200 Scope {name} does not exist")
        if definition.integration_types and integration not in definition.integration_types:
            raise OAuthError(
                "invalid_scope", f"MP-201 Scope {name} is not allowed for {integration}"
            )
    return scopes


def issue_token(state: EmulatorState, grant: Grant, now: float) -> dict[str, Any]:
    """Sign an access token shaped like Maskinporten's and return the token response."""
    client = grant.client
    lifetime = int(client.data.get("access_token_lifetime") or 120)
    issued = int(now)
    claims: dict[str, Any] = {
        "iss": state.config.issuer,
        "client_id": client.client_id,
        "client_amr": "private_key_jwt",
        "consumer": {
            "authority": "iso6523-actorid-upis",
            "ID": f"0192:{client.data['client_orgno']}",
        },
        "scope": " ".join(grant.scopes),
        "token_type": "Bearer",
        "iat": issued,
        "exp": issued + lifetime,
        "jti": state.new_uuid(),
    }
    if client.data.get("supplier_orgno"):
        claims["supplier"] = {
            "authority": "iso6523-actorid-upis",
            "ID": f"0192:{client.data['supplier_orgno']}",
        }
    if grant.resource:
        claims["aud"] = grant.resource[0] if len(grant.resource) == 1 else grant.resource
    with state.lock:
        state.counters["tokens_issued"] += 1
        state.tokens_by_client[client.client_id] += 1
    return {
        "access_token": state.signing_key.sign(claims),
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": " ".join(grant.scopes),
    }
