"""Typed errors of the Maskinporten token client and the self-service API client.

Token endpoint errors map the OAuth ``error`` string to a subclass, so callers can tell a
misconfiguration (``invalid_scope``: the scope is not on the client) from a broken key
(``invalid_grant``) without parsing text. ``code`` carries Digdir's ``MP-nnn`` code when the
description contains one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fjord.errors import FjordError

_MP_CODE = re.compile(r"\bMP-\d{3}\b")


class MaskinportenError(FjordError):
    """Base of every error raised by ``fjord.maskinporten``."""


class SettingsError(MaskinportenError):
    """The mounted Secret or the environment does not hold valid Maskinporten settings."""


class TokenError(MaskinportenError):
    """The token endpoint refused a grant (an OAuth error response)."""

    oauth_error: str = ""

    def __init__(self, error: str, description: str, status: int) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.status = status
        match = _MP_CODE.search(description)
        self.code: str | None = match.group(0) if match else None


class InvalidGrantError(TokenError):
    """``invalid_grant``: bad signature, unknown client or kid, expired key, wrong aud, reuse…"""

    oauth_error = "invalid_grant"


class InvalidClientError(TokenError):
    """``invalid_client``: client authentication failed."""

    oauth_error = "invalid_client"


class InvalidScopeError(TokenError):
    """``invalid_scope``: a scope is not registered on the client or not allowed for its type."""

    oauth_error = "invalid_scope"


class InvalidRequestError(TokenError):
    """``invalid_request``: a missing or malformed parameter (MP-011)."""

    oauth_error = "invalid_request"


class UnsupportedGrantTypeError(TokenError):
    """``unsupported_grant_type``: only the JWT-bearer grant is accepted."""

    oauth_error = "unsupported_grant_type"


class AccessDeniedError(TokenError):
    """``access_denied``: the consumer lacks access or delegation (MP-250/MP-251)."""

    oauth_error = "access_denied"


_TOKEN_ERRORS: dict[str, type[TokenError]] = {
    cls.oauth_error: cls
    for cls in (
        InvalidGrantError,
        InvalidClientError,
        InvalidScopeError,
        InvalidRequestError,
        UnsupportedGrantTypeError,
        AccessDeniedError,
    )
}


def token_error_from_body(status: int, body: Mapping[str, Any]) -> TokenError:
    """Build the typed error for an OAuth error body ``{error, error_description}``."""
    error = str(body.get("error") or "unknown_error")
    description = str(body.get("error_description") or "")
    cls = _TOKEN_ERRORS.get(error, TokenError)
    return cls(error, description, status)


class UnavailableError(MaskinportenError):
    """A transient failure (5xx, 429, connection error) persisted through every retry."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AdminApiError(MaskinportenError):
    """The self-service API answered with an error (Digdir's ``ApiErrorResponse``)."""

    def __init__(
        self,
        status: int,
        error: str,
        description: str,
        correlation_id: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"HTTP {status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.correlation_id = correlation_id
        self.errors = errors or []


class AdminValidationError(AdminApiError):
    """400: the request breaks a registration rule."""


class AdminAuthError(AdminApiError):
    """401/403: the supplier token is missing a scope or the caller may not touch the client."""


class AdminNotFoundError(AdminApiError):
    """404: no such client (or not visible to the caller)."""


class AdminConflictError(AdminApiError):
    """409: the client id or a kid is already taken."""


def admin_error_from_response(status: int, body: Any) -> AdminApiError:
    """Build the typed error for a self-service API error response."""
    data: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    error = str(data.get("error") or f"http_{status}")
    description = str(data.get("error_description") or body or "")
    correlation_id = data.get("correlation_id")
    raw_errors = data.get("errors")
    errors = [e for e in raw_errors if isinstance(e, dict)] if isinstance(raw_errors, list) else []
    cls: type[AdminApiError]
    if status == 400:
        cls = AdminValidationError
    elif status in (401, 403):
        cls = AdminAuthError
    elif status == 404:
        cls = AdminNotFoundError
    elif status == 409:
        cls = AdminConflictError
    else:
        cls = AdminApiError
    return cls(status, error, description, str(correlation_id) if correlation_id else None, errors)
