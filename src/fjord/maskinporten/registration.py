"""The self-service API's client object and JWKS body: field names, enums and Digdir's rules.

Shared by the emulator (which enforces the rules) and the admin client (which sends the same
models), so both sides agree on field names by construction. The rules return *problems* rather
than raising, because Digdir reports every field error of a request at once (``errors[]``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from jwt.algorithms import RSAAlgorithm
from pydantic import BaseModel, ConfigDict, Field

from fjord.maskinporten.keys import KID_PATTERN, PRIVATE_MEMBERS, SIGNING_ALGORITHMS, thumbprint

JWT_BEARER: Final[str] = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_KEYS = 5
MIN_RSA_BITS = 2048  # Digdir refuses shorter RSA keys
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")  # RFC 7515 base64url, unpadded
ORGNO_PATTERN = re.compile(r"^\d{9}$")

IntegrationType = Literal[
    "ansattporten", "api_klient", "eformidling", "idporten", "idporten_saml2", "krr", "maskinporten"
]
ApplicationType = Literal["web", "browser", "native"]
AuthMethod = Literal["client_secret_post", "client_secret_basic", "private_key_jwt", "none"]
GrantType = Literal[
    "authorization_code",
    "implicit",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",  # JWT_BEARER; Literal needs the text
]
RefreshTokenUsage = Literal["REUSE", "ONETIME"]


class ClientRegistration(BaseModel):
    """What a caller sends to ``POST``/``PUT /clients``. Response-only fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    client_id: str | None = None  # optional on create; the server generates one otherwise
    client_name: str | None = None
    client_orgno: str | None = None
    supplier_orgno: str | None = None  # set by the server; a request must not send it
    description: str | None = None
    active: bool = True
    integration_type: IntegrationType | None = None
    application_type: ApplicationType | None = None
    token_endpoint_auth_method: AuthMethod | None = None
    grant_types: list[GrantType] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=list)
    access_token_lifetime: int = Field(default=120, ge=1, le=86_400)
    authorization_lifetime: int = Field(default=7200, ge=1)
    refresh_token_lifetime: int = Field(default=600, ge=1)
    refresh_token_usage: RefreshTokenUsage = "ONETIME"  # noqa: S105
    # Login-only fields: meaningless for Maskinporten but part of the object.
    redirect_uris: list[str] = Field(default_factory=list)
    post_logout_redirect_uris: list[str] = Field(default_factory=list)
    frontchannel_logout_uri: str | None = None
    frontchannel_logout_session_required: bool | None = None
    sso_disabled: bool | None = None
    code_challenge_method: str | None = None
    logo_uri: str | None = None
    client_uri: str | None = None

    @classmethod
    def maskinporten(
        cls,
        *,
        client_name: str,
        client_orgno: str,
        scopes: list[str],
        description: str | None = None,
        client_id: str | None = None,
    ) -> ClientRegistration:
        """The one valid Maskinporten combination: web + private_key_jwt + jwt-bearer."""
        return cls(
            client_id=client_id,
            client_name=client_name,
            client_orgno=client_orgno,
            description=description,
            integration_type="maskinporten",
            application_type="web",
            token_endpoint_auth_method="private_key_jwt",  # noqa: S106
            grant_types=["urn:ietf:params:oauth:grant-type:jwt-bearer"],
            scopes=scopes,
        )

    def request_body(self) -> dict[str, Any]:
        """The JSON body to send: unset fields and server-set fields are left out.

        Leaving out server-set fields lets a caller send back a ``RegisteredClient`` it read
        (Digdir refuses a request that carries ``supplier_orgno``).
        """
        fields = set(ClientRegistration.model_fields) - {"supplier_orgno"}
        return self.model_dump(mode="json", exclude_none=True, include=fields)


class RegisteredClient(ClientRegistration):
    """What the API returns: the registration plus server-assigned fields."""

    client_id: str
    supplier_orgno: str | None = None
    created: str | None = None
    last_updated: str | None = None
    client_secret: str | None = None
    jwks_uri: str | None = None
    onbehalfof: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True)
class Problem:
    """One entry of Digdir's ``errors[]``: a rule a request broke."""

    message: str
    field: str | None = None

    def as_api_error(self, object_name: str) -> dict[str, Any]:
        return {
            "errorMessage": self.message,
            "isFieldError": self.field is not None,
            "objectName": object_name,
            "fieldIdentifier": self.field,
        }


def registration_problems(reg: ClientRegistration) -> list[Problem]:
    """Rules on the client object itself (not on who may register it)."""
    problems: list[Problem] = []
    if not reg.client_name:
        problems.append(Problem("client_name is required", "client_name"))
    if not reg.client_orgno:
        problems.append(Problem("client_orgno is required", "client_orgno"))
    elif not ORGNO_PATTERN.match(reg.client_orgno):
        problems.append(Problem("client_orgno must be a 9-digit orgnr", "client_orgno"))
    if reg.supplier_orgno is not None:
        problems.append(Problem("supplier_orgno is set by the server", "supplier_orgno"))
    if reg.integration_type is None:
        problems.append(Problem("integration_type is required", "integration_type"))
    if len(set(reg.scopes)) != len(reg.scopes):
        problems.append(Problem("scopes must be unique", "scopes"))
    if len(set(reg.grant_types)) != len(reg.grant_types):
        problems.append(Problem("grant_types must be unique", "grant_types"))
    if reg.integration_type == "maskinporten":
        problems.extend(_maskinporten_problems(reg))
    return problems


def _maskinporten_problems(reg: ClientRegistration) -> list[Problem]:
    problems: list[Problem] = []
    if reg.application_type != "web":
        message = "maskinporten clients must be application_type web"
        problems.append(Problem(message, "application_type"))
    if reg.token_endpoint_auth_method != "private_key_jwt":  # noqa: S105
        problems.append(
            Problem(
                "maskinporten clients must use token_endpoint_auth_method private_key_jwt",
                "token_endpoint_auth_method",
            )
        )
    if reg.grant_types != [JWT_BEARER]:
        message = f"maskinporten clients must use grant_types [{JWT_BEARER}]"
        problems.append(Problem(message, "grant_types"))
    return problems


def jwks_problems(body: Any) -> list[Problem]:
    """Rules on a JWKS replacement body ``{"keys": [...]}`` (Digdir section 2.5)."""
    if not isinstance(body, Mapping) or not isinstance(body.get("keys"), list):
        return [Problem('body must be {"keys": [...]}', "keys")]
    keys: list[Any] = body["keys"]
    problems: list[Problem] = []
    if len(keys) > MAX_KEYS:
        problems.append(Problem(f"at most {MAX_KEYS} keys are allowed, got {len(keys)}", "keys"))
    seen: set[str] = set()
    for i, key in enumerate(keys):
        where = f"keys[{i}]"
        if not isinstance(key, Mapping):
            problems.append(Problem("a key must be a JSON object", where))
            continue
        missing = [m for m in ("kty", "alg", "use", "e", "n", "kid") if not key.get(m)]
        if missing:
            problems.append(Problem(f"missing {', '.join(missing)}", where))
        kid = key.get("kid")
        if isinstance(kid, str) and kid:
            if not KID_PATTERN.match(kid):
                message = f"kid {kid!r} must be alphanumerics plus '._-'"
                problems.append(Problem(message, f"{where}.kid"))
            if kid in seen:
                problems.append(Problem(f"kid {kid!r} is not unique", f"{where}.kid"))
            seen.add(kid)
        if key.get("kty") not in (None, "RSA"):
            problems.append(Problem("kty must be RSA", f"{where}.kty"))
        if key.get("use") not in (None, "sig"):
            problems.append(Problem("use must be sig", f"{where}.use"))
        if key.get("alg") is not None and key.get("alg") not in SIGNING_ALGORITHMS:
            message = f"alg must be one of {', '.join(SIGNING_ALGORITHMS)}"
            problems.append(Problem(message, f"{where}.alg"))
        if any(m in key for m in PRIVATE_MEMBERS):
            problems.append(Problem("private keys must not be uploaded", where))
        found = _parameter_problems(key, where)
        problems += found
        if not found and not missing:
            problems += _material_problems(key, where)
    return problems


def _uint(value: str) -> int | None:
    """An RFC 7518 Base64urlUInt, or None when it is not one."""
    if not _BASE64URL.match(value):
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    return int.from_bytes(raw, "big")


def _parameter_problems(key: Mapping[str, Any], where: str) -> list[Problem]:
    """Types and encodings of the members, and Digdir's minimum RSA key size."""
    problems: list[Problem] = []
    for member in ("kty", "alg", "use", "kid", "n", "e"):
        if member in key and not isinstance(key[member], str):
            problems.append(Problem(f"{member} must be a string", f"{where}.{member}"))
    n, e = key.get("n"), key.get("e")
    if isinstance(n, str) and n:
        modulus = _uint(n)
        if modulus is None:
            problems.append(Problem("n must be base64url without padding", f"{where}.n"))
        elif modulus.bit_length() < MIN_RSA_BITS:
            problems.append(
                Problem(
                    f"RSA keys must be at least {MIN_RSA_BITS} bits, got {modulus.bit_length()}",
                    f"{where}.n",
                )
            )
    if isinstance(e, str) and e:
        exponent = _uint(e)
        if exponent is None:
            problems.append(Problem("e must be base64url without padding", f"{where}.e"))
        elif exponent < 3 or exponent % 2 == 0:
            problems.append(Problem("e must be an odd exponent of at least 3", f"{where}.e"))
    exp = key.get("exp")
    if exp is not None and (
        isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp)
    ):
        problems.append(Problem("exp must be a number of seconds since the epoch", f"{where}.exp"))
    x5c = key.get("x5c")
    if x5c is not None and not (isinstance(x5c, list) and all(isinstance(c, str) for c in x5c)):
        problems.append(Problem("x5c must be a list of base64 certificates", f"{where}.x5c"))
    return problems


def _material_problems(key: Mapping[str, Any], where: str) -> list[Problem]:
    """The key as a whole must load: the token endpoint verifies grants with it."""
    try:  # both libraries that will read it: jwcrypto (thumbprint), PyJWT (the token endpoint)
        thumbprint(key)
        RSAAlgorithm.from_jwk(json.dumps(dict(key)))
    except Exception as exc:  # each raises several unrelated types for a bad key
        return [Problem(f"not a valid RSA public key: {exc}", where)]
    return []
