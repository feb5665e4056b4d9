"""Who is calling the self-service API: a bearer access token from the emulator's own issuer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import jwt

from fjord.maskinporten.emulator.api_errors import ApiError
from fjord.maskinporten.emulator.state import EmulatorState

_CHALLENGE = 'Bearer error="invalid_token"'


@dataclass(frozen=True)
class Caller:
    """The admin client behind a request, as its access token describes it."""

    client_id: str
    orgno: str
    scopes: frozenset[str]

    def has_any(self, scopes: Iterable[str]) -> bool:
        return not self.scopes.isdisjoint(scopes)


def authenticate(state: EmulatorState, authorization: str | None, now: float) -> Caller:
    """Verify ``Authorization: Bearer <token>`` (signature, issuer, expiry); 401 otherwise."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("a bearer access token is required")
    try:
        claims = state.signing_key.verify(token.strip())
    except jwt.PyJWTError as exc:
        raise _unauthorized(f"invalid access token: {exc}") from exc
    if claims.get("iss") != state.config.issuer:
        raise _unauthorized("access token from another issuer")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= now:
        raise _unauthorized("access token expired")
    consumer = claims.get("consumer") or {}
    orgno = str(consumer.get("ID", "")).removeprefix("0192:")
    return Caller(
        client_id=str(claims.get("client_id", "")),
        orgno=orgno,
        scopes=frozenset(str(claims.get("scope", "")).split()),
    )


def _unauthorized(description: str) -> ApiError:
    return ApiError(401, "invalid_token", description, headers={"WWW-Authenticate": _CHALLENGE})
