"""Shared bounds and failure messages of the fuzz tests (imported by them, not a test)."""

from __future__ import annotations

import functools
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from hypothesis import Phase

SUPPLIER_ID = "fjord-supplier"
SUPPLIER_ORGNO = "991825827"

# Per route: enough to hit the unusual shapes (empty, huge, wrong types, odd unicode) that
# schemathesis tries first, few enough that all fuzz targets together take about a minute.
MAX_EXAMPLES_PER_ROUTE = 8
# Every phase but "explain": it re-parses the test's source with ast after a failure, which
# CPython 3.11 can break on (SystemError) once a deep request body has used up the stack.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)


def describe(case: Any, response: Any) -> str:
    """A 5xx as a reproducible request: method, path, query, body and what came back."""
    return (
        f"{case.operation.label} answered {response.status_code}\n"
        f"path parameters: {case.path_parameters!r}\nquery: {case.query!r}\n"
        f"body: {case.body!r}\nresponse: {response.text[:2000]}"
    )


@dataclass(frozen=True)
class ControlApi:
    """The control plane under fuzz: its URL, a platform-admin token, one bootstrapped cluster."""

    url: str
    token: str
    cluster: str
    cluster_token: str  # the HMAC key of ``cluster``'s Flux events


@functools.cache
def private_key(jwk_text: str) -> Any:
    """Loading an RSA private key checks it (slow): once per key, not once per example."""
    return jwt.algorithms.RSAAlgorithm.from_jwk(jwk_text)


def grant(key: dict[str, Any], issuer: str, client_id: str, scope: str, **extra: Any) -> str:
    now = int(time.time())
    claims = {
        "aud": issuer,
        "iss": client_id,
        "scope": scope,
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
        **extra,
    }
    private = private_key(json.dumps(key, sort_keys=True))
    return jwt.encode(claims, private, algorithm="RS256", headers={"kid": key["kid"]})  # type: ignore[arg-type]
