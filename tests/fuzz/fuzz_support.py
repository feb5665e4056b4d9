"""Shared bounds and failure messages of the fuzz tests (imported by them, not a test)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SUPPLIER_ID = "fjord-supplier"
SUPPLIER_ORGNO = "991825827"

# Per route: enough to hit the unusual shapes (empty, huge, wrong types, odd unicode) that
# schemathesis tries first, few enough that all fuzz targets together take about a minute.
MAX_EXAMPLES_PER_ROUTE = 12


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
